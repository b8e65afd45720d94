"""${NAME} substitution: inside strings, typed where numbers are expected, escapes, secrets."""

from __future__ import annotations

from fieldwatch.actors.mqtt.schema import MqttOptions
from tests.config.config_files import ConfigFiles

MQTT = """
sites:
  - name: s
    endpoints:
      - name: broker
        kind: mqtt
        host: ${MQTT_HOST}
        port: ${MQTT_PORT}
        username: site13
        password: ${SITE13_PASSWORD}
        topics: ["sensors/${SITE}/+"]
        offline_after_s: ${OFFLINE}
        clean_session: ${CLEAN}
        client_id: fw-${SITE}
"""

ENV = {"MQTT_HOST": "broker.local", "MQTT_PORT": "8883", "SITE13_PASSWORD": "s3cr3t",
       "SITE": "lutete", "OFFLINE": "120.5", "CLEAN": "false"}


def test_substitution_converts_only_where_the_schema_expects_numbers(files: ConfigFiles) -> None:
    config = files.load(MQTT, env=ENV)
    options = config.sites[0].endpoints[0].options
    assert isinstance(options, MqttOptions)
    assert options.host == "broker.local"
    assert options.port == 8883
    assert options.password == "s3cr3t"
    assert options.topics == ("sensors/lutete/+",)
    assert options.offline_after_s == 120.5
    assert options.clean_session is False
    assert options.client_id == "fw-lutete"


def test_numeric_looking_string_stays_a_string(files: ConfigFiles) -> None:
    config = files.load(MQTT, env={**ENV, "SITE13_PASSWORD": "12345"})
    assert config.sites[0].endpoints[0].options.password == "12345"  # type: ignore[union-attr]


def test_substitution_inside_a_larger_string(files: ConfigFiles) -> None:
    config = files.load("storage:\n  url: postgresql://fw:${PW}@db.local/fieldwatch\n", env={"PW": "p@ss"})
    assert config.storage.url == "postgresql://fw:p@ss@db.local/fieldwatch"


def test_escape_keeps_a_literal(files: ConfigFiles) -> None:
    config = files.load("instance: gw-$${HOST}-${X}\n", env={"X": "1"})
    assert config.instance == "gw-${HOST}-1"


def test_unset_variables_are_all_reported(files: ConfigFiles) -> None:
    env = {k: v for k, v in ENV.items() if k not in ("MQTT_PORT", "SITE13_PASSWORD")}
    errors = files.errors(MQTT, env=env)
    assert errors == [
        "fieldwatch.yaml:7: sites[0].endpoints[0].port: environment variable MQTT_PORT is not set",
        "fieldwatch.yaml:9: sites[0].endpoints[0].password: environment variable SITE13_PASSWORD is not set",
    ]


def test_bad_references(files: ConfigFiles) -> None:
    errors = files.errors("instance: ${1X}\nhttp: {listen: '${OPEN'}\n")
    assert errors == [
        "fieldwatch.yaml:1: instance: invalid environment variable name '1X'",
        "fieldwatch.yaml:2: http.listen: unterminated '${' (write '$${' for a literal '${')",
    ]


def test_non_numeric_substitution_where_a_number_is_expected(files: ConfigFiles) -> None:
    errors = files.errors(MQTT, env={**ENV, "MQTT_PORT": "eighty"})
    assert errors == ["fieldwatch.yaml:7: sites[0].endpoints[0].port: expected an integer, got 'eighty'"]


def test_secrets_never_appear_in_errors(files: ConfigFiles) -> None:
    text = MQTT.replace("        username: site13\n", "") + "http: {token: ['${TOKEN}']}\n"
    errors = files.errors(text, env={**ENV, "TOKEN": "tok-value", "SITE13_PASSWORD": "pw-value"})
    assert errors == [
        "fieldwatch.yaml:8: sites[0].endpoints[0].password: password given without username",
        "fieldwatch.yaml:13: http.token: expected a string, got a list",
    ]
    errors = files.errors("http: {token: '', listen: 'postgres://u:pw-value@h:x'}\n")
    assert not any("pw-value" in e for e in errors)
    assert "http.token: must not be empty" in errors[0]
