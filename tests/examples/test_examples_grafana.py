"""examples/grafana-dashboard.json is ready for import: it parses, its datasource is an input
variable, and every query uses only metric names fieldwatch exports (and is valid PromQL)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.examples.examples_helpers import EXAMPLES, metric_names

DASHBOARD = EXAMPLES / "grafana-dashboard.json"
DS_INPUT = "${DS_PROMETHEUS}"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets") or []:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            yield f"variable {var['name']}", query["query"] if isinstance(query, dict) else query


def _is_input(datasource: Any) -> bool:
    if isinstance(datasource, str):
        return datasource == DS_INPUT
    return isinstance(datasource, dict) and datasource.get("uid") == DS_INPUT and datasource.get("type") == "prometheus"


def test_inputs_declare_a_prometheus_datasource(dashboard: dict[str, Any]) -> None:
    inputs = {item["name"]: item for item in dashboard["__inputs"]}
    ds = inputs["DS_PROMETHEUS"]
    assert ds["type"] == "datasource" and ds["pluginId"] == "prometheus"
    assert dashboard["id"] is None, "an exported dashboard must not carry a database id"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]


def test_every_panel_uses_the_input_datasource(dashboard: dict[str, Any]) -> None:
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert _is_input(panel.get("datasource")), f"panel {panel['title']!r}: datasource {panel.get('datasource')}"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert _is_input(target.get("datasource", panel["datasource"])), f"panel {panel['title']!r}"
    for var in dashboard["templating"]["list"]:
        assert _is_input(var["datasource"]), f"variable {var['name']}"


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_variables(dashboard: dict[str, Any]) -> None:
    names = {var["name"] for var in dashboard["templating"]["list"]}
    assert {"site", "endpoint", "kind"} <= names
    used = "\n".join(expr for _, expr in _queries(dashboard))
    for name in ("site", "endpoint", "kind"):
        assert f"${name}" in used


def test_queries_use_only_exported_metrics(
    dashboard: dict[str, Any], exported: tuple[frozenset[str], frozenset[str]]
) -> None:
    samples, _ = exported
    for where, expr in _queries(dashboard):
        unknown = metric_names(expr) - samples
        assert not unknown, f"{where}: not exported by fieldwatch: {sorted(unknown)}"


def test_every_exported_metric_has_a_panel(
    dashboard: dict[str, Any], exported: tuple[frozenset[str], frozenset[str]]
) -> None:
    samples, _ = exported
    used: set[str] = set()
    for _, expr in _queries(dashboard):
        used |= metric_names(expr)
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in samples}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families <= shown, f"exported but on no panel: {sorted(families - shown)}"


def _as_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "15s")
    return re.sub(r"\$\{?[a-z_]+\}?", ".*", expr)


def test_queries_are_valid_promql(dashboard: dict[str, Any], promtool: str, tmp_path: Path) -> None:
    """Each panel query (variables filled in) as a recording rule, checked by promtool."""
    rules = [
        {"record": f"dashboard_query_{i}", "expr": _as_promql(expr)}
        for i, (where, expr) in enumerate(_queries(dashboard))
        if not expr.startswith("label_values(")
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
