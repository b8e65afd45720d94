"""YAML details: anchors and merge keys, empty files, redaction helpers, paths."""

from __future__ import annotations

from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.config import EndpointConfig, endpoint_public_dict
from fieldwatch.config.redact import redact_url
from tests.config.config_files import ConfigFiles


def test_anchors_and_merge_keys(files: ConfigFiles) -> None:
    config = files.load("""
        sites:
          - name: s
            endpoints:
              - &icmp {kind: icmp, name: a, host: 10.0.0.1, interval_s: 5, timeout_s: 1}
              - {<<: *icmp, name: b, interval_s: 2}
        """)
    a, b = config.sites[0].endpoints
    assert (a.options, b.name) == (IcmpOptions("10.0.0.1", 5.0, 1.0), "b")
    assert b.options == IcmpOptions("10.0.0.1", 2.0, 1.0)


def test_duplicate_key_inside_merge_is_reported(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - &icmp {kind: icmp, name: a, host: h}
              - {<<: *icmp, name: b, name: c}
        """)
    assert errors == ["fieldwatch.yaml:5: sites[0].endpoints[1].name: duplicate key (first at line 5)"]


def test_empty_file_is_a_valid_config(files: ConfigFiles) -> None:
    config = files.load("# nothing yet\n")
    assert config.sites == () and config.instance
    assert config.storage.url == f"sqlite:///{files.root / 'fieldwatch.db'}"


def test_null_sections_take_defaults(files: ConfigFiles) -> None:
    config = files.load("http:\nlogging:\nsites:\n  - name: a\n    endpoints:\n")
    assert config.http.listen == "127.0.0.1:8080" and config.sites[0].endpoints == ()


def test_sqlite_urls(files: ConfigFiles) -> None:
    assert files.load("storage: {url: 'sqlite:///:memory:'}\n").storage.url == "sqlite:///:memory:"
    assert files.load("storage: {url: 'sqlite:////var/lib/fw.db'}\n").storage.url == "sqlite:////var/lib/fw.db"
    url = files.load("storage: {url: 'sqlite:///data/fw.db?timeout=5'}\n").storage.url
    assert url == f"sqlite:///{files.root / 'data' / 'fw.db'}?timeout=5"


def test_redact_url() -> None:
    assert redact_url("postgresql://fw:secret@db/x") == "postgresql://fw:<redacted>@db/x"
    assert redact_url("opc.tcp://host:4840/path") == "opc.tcp://host:4840/path"


def test_endpoint_public_dict_drops_secrets() -> None:
    endpoint = EndpointConfig("r", "icmp", IcmpOptions(host="h"), supervision={"restart": "temporary"})
    assert endpoint_public_dict(endpoint) == {
        "name": "r", "kind": "icmp", "enabled": True, "host": "h", "interval_s": 10.0, "timeout_s": 1.0,
        "count": 1, "down_after": 2, "up_after": 1, "supervision": {"restart": "temporary"},
    }
