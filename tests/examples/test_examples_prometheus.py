"""examples/prometheus.yml and examples/alerts.yml: promtool accepts them, the rules fire as meant,
and every metric they use is one fieldwatch exports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.examples.examples_helpers import EXAMPLES, metric_names

ALERTS = EXAMPLES / "alerts.yml"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules(promtool: str) -> None:
    check = _run([promtool, "check", "rules", "alerts.yml"], EXAMPLES)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_promtool_check_config(promtool: str) -> None:
    check = _run([promtool, "check", "config", "prometheus.yml"], EXAMPLES)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 rule files found" in check.stdout


def test_scrape_config_shape() -> None:
    doc = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text(encoding="utf-8"))
    assert doc["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    job = jobs["fieldwatch"]
    assert job["scrape_interval"] == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"]


def test_rules_use_only_exported_metrics(exported: tuple[frozenset[str], frozenset[str]]) -> None:
    samples, _ = exported
    used: set[str] = set()
    for rule in _rules():
        used |= metric_names(str(rule["expr"]))
    assert used, "no fieldwatch metric found in alerts.yml"
    assert used <= samples, f"not exported by fieldwatch: {sorted(used - samples)}"


def test_rules_have_severity_and_text() -> None:
    rules = _rules()
    names = {rule["alert"] for rule in rules}
    for wanted in ("FieldwatchEndpointDown", "FieldwatchEndpointStale", "FieldwatchEndpointFaulty",
                   "FieldwatchStorageNotReady", "FieldwatchStorageWriteErrors", "FieldwatchStorageQueueGrowing",
                   "FieldwatchSupervisorRestartingOften", "FieldwatchMqttParseErrors",
                   "FieldwatchIcmpPacketLossHigh", "FieldwatchTargetDown"):  # fmt: skip
        assert wanted in names
    for rule in rules:
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert isinstance(annotations, dict) and annotations["summary"] and annotations["description"], rule["alert"]


_SERIES = 'instance="gw1:8080",job="fieldwatch"'
_EP = f'{_SERIES},site="lutete",endpoint="plc",kind="opcua"'
_BROKER = f'{_SERIES},site="lutete",endpoint="broker",kind="mqtt"'

_UNIT_TESTS = f"""
rule_files: [{ALERTS}]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'fieldwatch_endpoint_state{{{_EP},state="down"}}'
        values: '0 1x40'
      - series: 'up{{{_SERIES}}}'
        values: '1x8 0x40'
      - series: 'fieldwatch_storage_ready{{{_SERIES}}}'
        values: '1 0x40'
      - series: 'fieldwatch_supervisor_restarts_total{{{_SERIES},supervisor="root/sites/lutete"}}'
        values: '0+1x40'
      - series: 'fieldwatch_mqtt_messages_total{{{_BROKER},result="stored"}}'
        values: '0+10x80'
      - series: 'fieldwatch_mqtt_messages_total{{{_BROKER},result="parse_error"}}'
        values: '0+1x80'
      - series: 'fieldwatch_mqtt_messages_total{{{_BROKER},result="ignored"}}'
        values: '0x80'
    alert_rule_test:
      - eval_time: 1m
        alertname: FieldwatchEndpointDown
        exp_alerts: []
      - eval_time: 3m
        alertname: FieldwatchEndpointDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: "gw1:8080", job: fieldwatch, site: lutete,
                         endpoint: plc, kind: opcua, state: down}}
            exp_annotations:
              summary: "lutete/plc (opcua) is down"
              description: "Endpoint plc of site lutete has been down for more than 2 minutes (fieldwatch gw1:8080). The reason is in `fieldwatch status` or GET /api/v1/endpoints/lutete/plc."
              page: "http://gw1:8080/?site=lutete&q=plc"
      - eval_time: 4m
        alertname: FieldwatchTargetDown
        exp_alerts: []
      - eval_time: 5m
        alertname: FieldwatchTargetDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: "gw1:8080", job: fieldwatch}}
            exp_annotations:
              summary: "fieldwatch gw1:8080 cannot be scraped"
              description: "Prometheus has not reached fieldwatch at gw1:8080 for 2 minutes. Check `systemctl status fieldwatch` and `journalctl -u fieldwatch`."
      - eval_time: 2m
        alertname: FieldwatchStorageNotReady
        exp_alerts:
          - exp_labels: {{severity: critical, instance: "gw1:8080", job: fieldwatch}}
            exp_annotations:
              summary: "fieldwatch gw1:8080: storage is not writable"
              description: "fieldwatch at gw1:8080 cannot write to its database (GET /readyz says why). Writes are kept in memory and retried; check the database (disk full, PostgreSQL down, permissions)."
      - eval_time: 10m
        alertname: FieldwatchSupervisorRestartingOften
        exp_alerts:
          - exp_labels: {{severity: warning, instance: "gw1:8080", job: fieldwatch,
                         supervisor: root/sites/lutete}}
            exp_annotations:
              summary: "root/sites/lutete restarted children 40 times in 10 minutes"
              description: "Supervisor root/sites/lutete on fieldwatch gw1:8080 keeps restarting its children. GET /api/v1/tree shows each actor's restarts and last failure."
      - eval_time: 17m
        alertname: FieldwatchMqttParseErrors
        exp_alerts:
          - exp_labels: {{severity: warning, instance: "gw1:8080", site: lutete, endpoint: broker}}
            exp_annotations:
              summary: "lutete/broker: 9.091% of MQTT messages fail to parse"
              description: "Messages on lutete/broker do not match their parser (payload format changed?). Each failure is recorded with a truncated sample in the parse_error table."
"""


def test_rules_fire_as_documented(promtool: str, tmp_path: Path) -> None:
    """promtool's rule unit tests: the conditions, the `for:` delays and the annotation templates."""
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(_UNIT_TESTS, encoding="utf-8")
    result = _run([promtool, "test", "rules", str(spec)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
