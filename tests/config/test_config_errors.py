"""Bad fieldwatch.yaml files: every error names file, line and key path."""

from __future__ import annotations

from tests.config.config_files import ConfigFiles

OPCUA_SITE = """
sites:
  - name: lutete
    endpoints:
      - name: plc
        kind: opcua
        url: opc.tcp://10.0.0.5:4840
"""


def test_unknown_key_suggests_the_right_one(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: lutete
            endpoints:
              - name: plc
                kind: opcua
                urll: opc.tcp://10.0.0.5:4840
        """)
    assert "fieldwatch.yaml:6: sites[0].endpoints[0].urll: unknown key 'urll' (did you mean 'url'?)" in errors
    assert "fieldwatch.yaml:4: sites[0].endpoints[0].url: missing required key" in errors


def test_unknown_top_level_key(files: ConfigFiles) -> None:
    errors = files.errors("""
        instance: gw
        stroage: {url: "sqlite:///x.db"}
        """)
    assert errors == ["fieldwatch.yaml:2: stroage: unknown key 'stroage' (did you mean 'storage'?)"]


def test_wrong_types(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: broker
                kind: mqtt
                host: 127.0.0.1
                port: "1883"
                topics: [a/b]
              - name: router
                kind: icmp
                host: 10.0.0.1
                count: true
                interval_s: 10
        """)
    assert errors == [
        "fieldwatch.yaml:7: sites[0].endpoints[0].port: expected an integer, got a string '1883'",
        "fieldwatch.yaml:12: sites[0].endpoints[1].count: expected an integer, got a boolean",
    ]


def test_int_is_fine_where_a_float_is_expected(files: ConfigFiles) -> None:
    config = files.load("""
        sites:
          - name: s
            endpoints:
              - {name: r, kind: icmp, host: 10.0.0.1, interval_s: 10, timeout_s: 2}
        """)
    options = config.sites[0].endpoints[0].options
    assert options.interval_s == 10.0 and isinstance(options.interval_s, float)


def test_bad_opcua_url(files: ConfigFiles) -> None:
    errors = files.errors(OPCUA_SITE.replace("opc.tcp://10.0.0.5:4840", "http://10.0.0.5:4840"))
    assert errors == ["fieldwatch.yaml:6: sites[0].endpoints[0].url: must start with opc.tcp://"]


def test_opcua_url_without_host(files: ConfigFiles) -> None:
    errors = files.errors(OPCUA_SITE.replace("opc.tcp://10.0.0.5:4840", "opc.tcp:///path"))
    assert errors == [
        "fieldwatch.yaml:6: sites[0].endpoints[0].url: has no host (expected opc.tcp://HOST[:PORT][/PATH])"
    ]


def test_duplicate_site_name(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: lutete
          - name: other
          - name: lutete
        """)
    assert errors == ["fieldwatch.yaml:4: sites[2].name: duplicate site name 'lutete' (first at line 2)"]


def test_duplicate_endpoint_name(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: lutete
            endpoints:
              - {name: router, kind: icmp, host: 10.0.0.1}
              - name: router
                kind: icmp
                host: 10.0.0.2
        """)
    assert errors == [
        "fieldwatch.yaml:5: sites[0].endpoints[1].name: duplicate endpoint name 'router' (first at line 4)"
    ]


def test_bad_names(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: "-bad site"
        """)
    assert len(errors) == 1
    assert errors == [
        "fieldwatch.yaml:2: sites[0].name: invalid value '-bad site': "
        "use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
    ]


def test_unset_environment_variable(files: ConfigFiles) -> None:
    errors = files.errors("""
        http:
          listen: 127.0.0.1:8080
          token: ${FIELDWATCH_TOKEN}
        """)
    assert errors == ["fieldwatch.yaml:3: http.token: environment variable FIELDWATCH_TOKEN is not set"]


def test_bad_enum(files: ConfigFiles) -> None:
    errors = files.errors("""
        logging:
          level: verbose
          format: jsn
        """)
    assert errors == [
        "fieldwatch.yaml:2: logging.level: must be one of debug, info, warning, error, got 'verbose'",
        "fieldwatch.yaml:3: logging.format: must be one of text, json, got 'jsn' (did you mean 'json'?)",
    ]


def test_bad_kind(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: e
                kind: modbus
                port: 502
        """)
    assert errors == ["fieldwatch.yaml:5: sites[0].endpoints[0].kind: must be one of icmp, opcua, mqtt, got 'modbus'"]


def test_missing_required_key_names_the_parent_line(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: router
                kind: icmp
                interval_s: 5
        """)
    assert errors == ["fieldwatch.yaml:4: sites[0].endpoints[0].host: missing required key"]


def test_negative_interval(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: router
                kind: icmp
                host: 10.0.0.1
                interval_s: -10
        """)
    assert errors == ["fieldwatch.yaml:7: sites[0].endpoints[0].interval_s: must be > 0, got -10.0"]


def test_icmp_timeout_must_not_exceed_interval(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - {name: r, kind: icmp, host: h, interval_s: 2,
                 timeout_s: 2.5}
        """)
    assert errors == [
        "fieldwatch.yaml:5: sites[0].endpoints[0].timeout_s: timeout_s (2.5) must not exceed interval_s (2)"
    ]


def test_threshold_on_unknown_reading(files: ConfigFiles) -> None:
    errors = files.errors(OPCUA_SITE + """\
        nodes:
          - {id: "ns=3;i=1002", name: level}
        thresholds:
          - {reading: level, high: 9.5}
          - {reading: lvl, low: 0.5}
""")
    assert errors == [
        "fieldwatch.yaml:11: sites[0].endpoints[0].thresholds[1].reading: "
        "unknown reading 'lvl': not the name of a node (level)"
    ]


def test_threshold_bounds(files: ConfigFiles) -> None:
    errors = files.errors(OPCUA_SITE + """\
        nodes: [{id: "i=85", name: level}]
        thresholds:
          - {reading: level, high: 1, low: 2}
          - {reading: level, severity: fatal}
""")
    assert errors == [
        "fieldwatch.yaml:9: sites[0].endpoints[0].thresholds[0].low: low (2) must be less than high (1)",
        "fieldwatch.yaml:10: sites[0].endpoints[0].thresholds[1].severity: "
        "must be one of info, warning, critical, got 'fatal'",
        "fieldwatch.yaml:10: sites[0].endpoints[0].thresholds[1].high: a threshold needs high, low or both",
    ]


def test_secure_policy_needs_cert_and_key(files: ConfigFiles) -> None:
    errors = files.errors(OPCUA_SITE + """\
        security:
          policy: Basic256Sha256
          cert: client.pem
""")
    assert errors == ["fieldwatch.yaml:7: sites[0].endpoints[0].security.key: required when policy is Basic256Sha256"]


def test_yaml_syntax_error_names_file_and_line(files: ConfigFiles) -> None:
    errors = files.errors("""
        instance: gw
        http:
          listen: [127.0.0.1:8080
        logging: {}
        """)
    assert len(errors) == 1
    assert errors[0].startswith("fieldwatch.yaml:4: YAML syntax error: ")


def test_duplicate_yaml_key(files: ConfigFiles) -> None:
    errors = files.errors("""
        http:
          listen: 127.0.0.1:8080
          threads: 4
          listen: 0.0.0.0:8080
        """)
    assert errors == ["fieldwatch.yaml:4: http.listen: duplicate key (first at line 2)"]


def test_top_level_must_be_a_mapping(files: ConfigFiles) -> None:
    assert files.errors("- a\n- b\n") == ["fieldwatch.yaml:1: expected a mapping at the top level, got a list"]


def test_mqtt_rules(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: broker
                kind: mqtt
                host: mqtt://broker
                port: 70000
                qos: 3
                password: secret-value
                topics: ["a/#/b", "$share//x", "ok/+"]
                parsers:
                  - {match: "ok/+device", format: number}
                  - {match: "ok/+metric", format: json}
                  - {match: "other/+metric", value: "$.v"}
        """)
    assert errors == [
        "fieldwatch.yaml:6: sites[0].endpoints[0].host: must be a host name or IP address "
        "(not a URL; the port goes in port:)",
        "fieldwatch.yaml:7: sites[0].endpoints[0].port: must be <= 65535, got 70000",
        "fieldwatch.yaml:8: sites[0].endpoints[0].qos: must be <= 2, got 3",
        "fieldwatch.yaml:9: sites[0].endpoints[0].password: password given without username",
        "fieldwatch.yaml:10: sites[0].endpoints[0].topics[0]: '#' must be the whole last level of a topic filter",
        "fieldwatch.yaml:10: sites[0].endpoints[0].topics[1]: a shared subscription must be $share/GROUP/FILTER",
        "fieldwatch.yaml:12: sites[0].endpoints[0].parsers[0].name: required when the pattern has no "
        "+metric segment (it names the reading)",
        "fieldwatch.yaml:13: sites[0].endpoints[0].parsers[1].value: required when format is json "
        "(a JSON path such as \"$.value\")",
    ]
    assert not any("secret-value" in e for e in errors)


def test_mqtt_parser_must_match_a_subscribed_topic(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: broker
                kind: mqtt
                host: broker
                topics: ["$share/g/sensors/+/+", "meters/#"]
                parsers:
                  - {match: "sensors/+device/+metric", value: "$.v"}
                  - {match: "meters/+device", format: number, name: energy}
                  - {match: "alarms/+device/+metric", value: "$.v"}
        """)
    assert errors == [
        "fieldwatch.yaml:11: sites[0].endpoints[0].parsers[2].match: "
        "pattern 'alarms/+device/+metric' matches none of the subscribed topics"
    ]


def test_http_and_storage_values(files: ConfigFiles) -> None:
    errors = files.errors("""
        storage:
          url: mysql://u@h/db
          retention_days: 0
        http:
          listen: "8080"
          threads: 0
        """)
    assert errors == [
        "fieldwatch.yaml:2: storage.url: unsupported database scheme 'mysql': use sqlite or postgresql",
        "fieldwatch.yaml:3: storage.retention_days: must be > 0, got 0.0",
        "fieldwatch.yaml:5: http.listen: must be HOST:PORT with PORT 0..65535 (0 picks a free port), got '8080'",
        "fieldwatch.yaml:6: http.threads: must be >= 1, got 0",
    ]


def test_endpoint_supervision_override_is_validated(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: r
                kind: icmp
                host: h
                supervision:
                  restart: sometimes
                  backoff: {max_s: 0.5}
                  health_check: {failures: 0}
                  strategy: one_for_all
        """)
    assert errors == [
        "fieldwatch.yaml:8: sites[0].endpoints[0].supervision.restart: "
        "must be one of permanent, transient, temporary, got 'sometimes'",
        "fieldwatch.yaml:10: sites[0].endpoints[0].supervision.health_check.failures: must be >= 1, got 0",
        "fieldwatch.yaml:11: sites[0].endpoints[0].supervision.strategy: unknown key 'strategy'",
    ]


def test_every_error_is_reported_not_just_the_first(files: ConfigFiles) -> None:
    errors = files.errors("""
        instance: gw
        storage: {url: "oracle://x", retention_days: -1}
        http: {listen: "127.0.0.1:8080", treads: 4}
        logging: {level: loud}
        sites:
          - name: a
            endpoints:
              - {name: r, kind: icmp, host: h, count: 0}
              - {name: p, kind: opcua, url: "opc.tcp://h", nodes: [{id: "x=1", name: n}]}
          - name: a
        """)
    assert [e.split(":")[1] for e in errors] == ["2", "2", "3", "4", "8", "9", "10"]
    assert len(errors) == 7
    assert "fieldwatch.yaml:3: http.treads: unknown key 'treads' (did you mean 'threads'?)" in errors
    assert "fieldwatch.yaml:10: sites[1].name: duplicate site name 'a' (first at line 6)" in errors
    assert errors[5].startswith("fieldwatch.yaml:9: sites[0].endpoints[1].nodes[0].id: invalid value 'x=1'")


def test_unreadable_file(files: ConfigFiles) -> None:
    import pytest

    from fieldwatch.config.loader import load_config
    from fieldwatch.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config("missing.yaml")
    assert info.value.errors[0].startswith("missing.yaml: cannot read: ")


def test_mqtt_json_paths_compile(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: broker
                kind: mqtt
                host: broker
                topics: ["t/+"]
                parsers:
                  - {match: "t/+metric", value: "$..x", timestamp: ts, id_field: "$.id"}
        """)
    assert errors == [
        "fieldwatch.yaml:9: sites[0].endpoints[0].parsers[0].value: JSON path '$..x': expected a key name at column 3"
    ]


def test_retention_tiers_and_the_old_key(files: ConfigFiles) -> None:
    from fieldwatch.config.loader import load_config

    tiers = files.write("""
        storage:
          retention: {raw_days: 2.5, hour_days: 365}
        """)
    retention = load_config(tiers).storage.effective_retention()
    assert (retention.raw_days, retention.minute_days, retention.hour_days, retention.events_days) == (2.5, 90, 365, 90)
    old = files.write("""
        storage:
          retention_days: 30
        """)
    retention = load_config(old).storage.effective_retention()  # the old key: raw_days = events_days = N
    assert (retention.raw_days, retention.minute_days, retention.hour_days, retention.events_days) == (30, 90, 730, 30)
    errors = files.errors("""
        storage:
          retention: {raw_days: 0, weeks: 2}
          retention_days: 30
        """)
    assert errors == [
        "fieldwatch.yaml:2: storage.retention.raw_days: must be > 0, got 0.0",
        "fieldwatch.yaml:2: storage.retention.weeks: unknown key 'weeks'",
        "fieldwatch.yaml:3: storage.retention_days: give storage.retention (the tiers) or the old retention_days, not both",
    ]
