"""examples/alertmanager.yml: amtool accepts it, and it routes what examples/alerts.yml raises."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.examples.examples_helpers import EXAMPLES

CONFIG = EXAMPLES / "alertmanager.yml"


def test_amtool_check_config() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        print("SKIP reason: amtool not installed (Debian package 'prometheus-alertmanager')")
        pytest.skip("amtool not installed")
    check = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_routes_the_alert_rules_and_sends_resolutions() -> None:
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert {"site", "endpoint"} <= set(doc["route"]["group_by"])
    receivers = {r["name"]: r for r in doc["receivers"]}
    assert doc["route"]["receiver"] in receivers
    for receiver in receivers.values():
        assert all(hook["send_resolved"] for hook in receiver.get("webhook_configs", []))
    rules = yaml.safe_load((EXAMPLES / "alerts.yml").read_text(encoding="utf-8"))
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"FieldwatchTargetDown", "FieldwatchEndpointFaulty"} <= names  # the inhibit rules name real alerts
    down = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == "FieldwatchEndpointDown")
    assert "$labels.site" in down["annotations"]["page"] and "$labels.instance" in down["annotations"]["page"]
