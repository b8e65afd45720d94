"""Careless or hostile config text and API site bodies: bounded, linear, encodable (issue 14 items 2, 3, 11)."""

from __future__ import annotations

import time

import pytest

from fieldwatch.config.redact import redact_url
from fieldwatch.config.sites import parse_site_body
from fieldwatch.errors import ConfigError
from tests.config.config_files import ConfigFiles


def _site_errors(body: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_site_body(body)
    return list(info.value.errors)


def test_a_100000_character_name_is_refused_in_linear_time() -> None:
    """Item 3: the name's 63-character bound is checked first; 100,000 characters cost milliseconds."""
    timings = {}
    for n in (10_000, 100_000):
        began = time.perf_counter()
        errors = _site_errors({"name": "a" * n, "endpoints": [{"name": "b" * n, "kind": "icmp", "host": "h"}]})
        timings[n] = time.perf_counter() - began
        assert any(e.startswith("name:") and "longer than" in e for e in errors), errors
        assert max(len(e) for e in errors) < 400  # the message quotes no 100,000 characters
    assert timings[100_000] < 0.5, timings


def test_url_password_redaction_is_linear() -> None:
    """Item 3: the redaction regex was quadratic in a long run of letters (51.8 s for 100,000)."""
    began = time.perf_counter()
    assert redact_url("a" * 200_000) == "a" * 200_000
    assert time.perf_counter() - began < 0.5
    assert redact_url("x mqtt://u:pw@h:1 y") == "x mqtt://u:<redacted>@h:1 y"


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "nul\x00here"])
def test_unstorable_strings_in_a_site_body_are_refused(bad: str) -> None:
    """Item 2: a lone surrogate or a NUL anywhere in a site is a config error, before anything is stored."""
    errors = _site_errors({"name": "s", "endpoints": [{"name": "p", "kind": "icmp", "host": bad}]})
    assert errors and errors[0].startswith("endpoints[0].host: invalid value: contains")


def test_unstorable_strings_in_yaml_are_refused(files: ConfigFiles) -> None:
    """Item 2: the same check for the config file, escapes in double-quoted YAML and keys included."""
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - {name: p, kind: icmp, host: "\\ud800"}
              - {name: q, kind: icmp, host: "a\\0b"}
        """)
    assert errors == [
        "fieldwatch.yaml:4: sites[0].endpoints[0].host: invalid value: contains a lone surrogate (U+D800) at position 0",
        "fieldwatch.yaml:5: sites[0].endpoints[1].host: invalid value: contains a NUL character at position 1",
    ]


def test_icmp_timeout_defaults_to_at_most_the_interval(files: ConfigFiles) -> None:
    """Item 11: `interval_s: 1` alone is valid (timeout 1); 0.5 alone gets timeout 0.5; equal is allowed."""
    config = files.load("""
        sites:
          - name: s
            endpoints:
              - {name: a, kind: icmp, host: h, interval_s: 1}
              - {name: b, kind: icmp, host: h, interval_s: 0.5}
              - {name: c, kind: icmp, host: h, interval_s: 2, timeout_s: 2}
              - {name: d, kind: icmp, host: h}
        """)
    timeouts = {ep.name: ep.options.timeout_s for ep in config.sites[0].endpoints}
    assert timeouts == {"a": 1.0, "b": 0.5, "c": 2.0, "d": 1.0}
