"""supervision.yaml: the repository file equals the built-in default, partial files merge, OTP rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fieldwatch.config import load_supervision, parse_supervision_text
from fieldwatch.errors import ConfigError
from fieldwatch.policy import DEFAULT_POLICY, Backoff, ChildPolicy, HealthCheck, Intensity
from tests.config.config_files import ConfigFiles

REPO = Path(__file__).resolve().parents[2]


def sup_errors(text: str) -> list[str]:
    """Errors of a supervision.yaml text that must fail."""
    with pytest.raises(ConfigError) as info:
        parse_supervision_text(text.lstrip("\n"), "supervision.yaml", env={})
    return info.value.errors


def test_repository_supervision_yaml_equals_default_policy() -> None:
    assert load_supervision(REPO / "supervision.yaml") == DEFAULT_POLICY


def test_empty_file_is_the_default() -> None:
    assert parse_supervision_text("# nothing\n", "s.yaml", env={}) == DEFAULT_POLICY


def test_partial_file_merges_with_defaults() -> None:
    policy = parse_supervision_text(
        """
root:
  intensity: {max_restarts: 3}
defaults:
  backoff: {max_s: 120}
storage:
  batch: {max_rows: 10}
kinds:
  mqtt: {restart: transient}
  opcua: {health_check: {failures: 5}}
""",
        "s.yaml",
        env={},
    )
    assert policy.root == replace(DEFAULT_POLICY.root, intensity=Intensity(3, 60.0))
    assert policy.defaults.backoff == Backoff(max_s=120.0)
    assert policy.defaults.health_check == DEFAULT_POLICY.defaults.health_check
    assert policy.sites == DEFAULT_POLICY.sites
    assert policy.storage.batch.max_rows == 10 and policy.storage.batch.max_delay_ms == 50
    assert policy.kinds == {
        "icmp": {"health_check": {"interval_s": 10.0}},
        "opcua": {"backoff": {"max_s": 30.0}, "health_check": {"failures": 5}},
        "mqtt": {"restart": "transient"},
    }
    assert policy.for_endpoint("opcua") == ChildPolicy(
        backoff=Backoff(max_s=30.0), health_check=HealthCheck(failures=5)
    )
    assert policy.for_endpoint("mqtt").restart == "transient"


def test_bad_strategy() -> None:
    assert sup_errors("""
root:
  strategy: one_for_some
""") == [
        "supervision.yaml:2: root.strategy: must be one of one_for_one, one_for_all, rest_for_one, "
        "got 'one_for_some' (did you mean 'one_for_one'?)"
    ]


def test_non_integer_and_negative_intensity() -> None:
    assert sup_errors("""
root:
  intensity: {max_restarts: 2.5, within_s: 60}
sites:
  intensity: {max_restarts: -1}
""") == [
        "supervision.yaml:2: root.intensity.max_restarts: expected an integer, got a number",
        "supervision.yaml:4: sites.intensity.max_restarts: must be >= 0, got -1",
    ]


def test_zero_period() -> None:
    assert sup_errors("""
sites:
  strategy: one_for_all
  intensity:
    max_restarts: 5
    within_s: 0
""") == ["supervision.yaml:5: sites.intensity.within_s: must be > 0, got 0.0"]


def test_unknown_restart_type() -> None:
    assert sup_errors("""
defaults:
  restart: always
""") == [
        "supervision.yaml:2: defaults.restart: must be one of permanent, transient, temporary, got 'always'"
    ]


def test_negative_shutdown_timeout() -> None:
    assert sup_errors("""
kinds:
  mqtt:
    shutdown_timeout_s: -1
""") == ["supervision.yaml:3: kinds.mqtt.shutdown_timeout_s: must be >= 0, got -1.0"]


def test_backoff_health_batch_retry_rules() -> None:
    assert sup_errors("""
defaults:
  backoff: {initial_s: 0, multiplier: 0.5, jitter: 1, reset_after_s: -1}
  health_check: {interval_s: 0, timeout_s: -1, failures: 0}
storage:
  batch: {max_rows: 0, max_delay_ms: -5}
  retry: {initial_s: 2, max_s: 1}
kinds:
  opcua: {backoff: {initial_s: 40}}
  modbus: {restart: permanent}
root:
  on_exhausted: ignore
sites:
  on_exhausted: exit
""") == [
        "supervision.yaml:2: defaults.backoff.initial_s: must be > 0, got 0.0",
        "supervision.yaml:2: defaults.backoff.multiplier: must be >= 1, got 0.5",
        "supervision.yaml:2: defaults.backoff.jitter: must be < 1, got 1.0",
        "supervision.yaml:2: defaults.backoff.reset_after_s: must be >= 0, got -1.0",
        "supervision.yaml:3: defaults.health_check.interval_s: must be > 0, got 0.0",
        "supervision.yaml:3: defaults.health_check.timeout_s: must be > 0, got -1.0",
        "supervision.yaml:3: defaults.health_check.failures: must be >= 1, got 0",
        "supervision.yaml:5: storage.batch.max_rows: must be >= 1, got 0",
        "supervision.yaml:5: storage.batch.max_delay_ms: must be >= 0, got -5",
        "supervision.yaml:6: storage.retry.max_s: max_s (1) must be >= initial_s (2)",
        "supervision.yaml:8: kinds.opcua.backoff.initial_s: max_s (30) must be >= initial_s (40)",
        "supervision.yaml:9: kinds.modbus: unknown key 'modbus'; expected one of icmp, opcua, mqtt",
        "supervision.yaml:11: root.on_exhausted: must be one of exit, restart, got 'ignore'",
        "supervision.yaml:13: sites.on_exhausted: unknown key 'on_exhausted'",
    ]


def test_config_uses_supervision_yaml_beside_it(files: ConfigFiles) -> None:
    files.write("defaults: {restart: transient}\n", "supervision.yaml")
    config = files.load("instance: gw\n")
    assert config.supervision.defaults.restart == "transient"


def test_config_without_supervision_file_uses_builtin(files: ConfigFiles) -> None:
    assert files.load("instance: gw\n").supervision is DEFAULT_POLICY


def test_config_names_a_supervision_file(files: ConfigFiles) -> None:
    files.write("root: {strategy: one_for_all}\n", "policy/sup.yaml")
    config = files.load("supervision: policy/sup.yaml\n")
    assert config.supervision.root.strategy == "one_for_all"


def test_config_reports_supervision_file_errors(files: ConfigFiles) -> None:
    files.write("\nroot:\n  strategy: bogus\n", "other.yaml")
    errors = files.errors("supervision: other.yaml\nhttp: {threads: 0}\n")
    assert errors == [
        "fieldwatch.yaml:2: http.threads: must be >= 1, got 0",
        f"{files.root / 'other.yaml'}:2: root.strategy: must be one of one_for_one, one_for_all, "
        "rest_for_one, got 'bogus'",
    ]


def test_missing_supervision_file(files: ConfigFiles) -> None:
    errors = files.errors("instance: gw\nsupervision: nope.yaml\n")
    assert errors == [f"fieldwatch.yaml:2: supervision: file not found: {files.root / 'nope.yaml'}"]


def test_endpoint_override_merges_via_for_endpoint(files: ConfigFiles) -> None:
    config = files.load("""
        sites:
          - name: s
            endpoints:
              - name: plc
                kind: opcua
                url: opc.tcp://h:4840
                supervision:
                  restart: transient
                  backoff: {initial_s: 0.5}
                  health_check: {timeout_s: 1}
        """)
    endpoint = config.sites[0].endpoints[0]
    assert endpoint.supervision == {
        "restart": "transient",
        "backoff": {"initial_s": 0.5},
        "health_check": {"timeout_s": 1.0},
    }
    assert config.supervision.for_endpoint(endpoint.kind, endpoint.supervision) == ChildPolicy(
        restart="transient",
        backoff=Backoff(initial_s=0.5, max_s=30.0),  # max_s from kinds.opcua
        health_check=HealthCheck(timeout_s=1.0),
    )


def test_endpoint_override_checked_against_effective_policy(files: ConfigFiles) -> None:
    errors = files.errors("""
        sites:
          - name: s
            endpoints:
              - name: plc
                kind: opcua
                url: opc.tcp://h:4840
                supervision:
                  backoff: {initial_s: 45}
        """)
    assert errors == [
        "fieldwatch.yaml:8: sites[0].endpoints[0].supervision.backoff.initial_s: "
        "max_s (30) must be >= initial_s (45)"
    ]
