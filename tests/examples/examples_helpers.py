"""Helpers of the examples/ tests: paths, metric-name extraction, the names fieldwatch exports."""

from __future__ import annotations

import re
import time
from pathlib import Path

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from fieldwatch import states
from fieldwatch.actors.icmp.stats import fold_probe
from fieldwatch.actors.tree import TreeView
from fieldwatch.cluster.view import ClusterCollector, FencedWrites, LocalCluster
from fieldwatch.http.metrics import FieldwatchCollector
from fieldwatch.ledger import EndpointLedger
from fieldwatch.status import EndpointStatus
from fieldwatch.storage.gateway import StorageGateway
from tests.ledger_helpers import new_ledger, seed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
METRIC_NAME = re.compile(r"fieldwatch_[a-z_]+")


def metric_names(text: str) -> set[str]:
    """Every `fieldwatch_...` name in a PromQL expression (or any text)."""
    return set(METRIC_NAME.findall(text))


def _board() -> EndpointLedger:
    """One endpoint of each kind with every per-endpoint value filled in."""
    board = new_ledger()
    now = time.time()
    seed(board, EndpointStatus(1, "site-a", "plc", "opcua", state=states.UP, last_data_at=now,
                                  fresh_within_s=30, restarts=1, reconnects=2))  # fmt: skip
    seed(board, EndpointStatus(2, "site-a", "router", "icmp", state=states.DOWN, last_data_at=now - 60,
                                  down_since=now - 30))  # fmt: skip
    seed(board, EndpointStatus(3, "site-b", "broker", "mqtt", state=states.UP, last_data_at=now,
                                  fresh_within_s=300))  # fmt: skip
    for result in ("ok", "bad_status", "error"):
        board.incarnation(1, 0).count("opcua_reads", result, 3)
    for result in ("stored", "parse_error", "ignored"):
        board.incarnation(3, 0).count("mqtt_messages", result, 5)
    board.incarnation(2, 0).observe(fold_probe, ([0.0007, 0.004], 0.5))
    board.incarnation(1, 0).alert("threshold", "warning", "", "level")
    board.incarnation(2, 0).alert("down", "warning", "", "")
    board.incarnation(3, 0).alert("offline", "warning", "", "dev1")
    board.incarnation(1, 0).value("level", None, 4.2)
    board.incarnation(3, 0).value("temp", "dev1", 21.5)
    return board


def exported_names() -> tuple[frozenset[str], frozenset[str]]:
    """(sample names, family names) of a real collector over a filled ledger, as /metrics renders them."""
    tree = TreeView()
    tree.count_restart("root/sites/site-a")
    collector = FieldwatchCollector(_board(), tree, StorageGateway())
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    sites = lambda: ["site-a"]  # noqa: E731
    registry.register(ClusterCollector(LocalCluster("gw-1", sites), sites, FencedWrites()))  # SPEC 7 cluster families
    families = list(text_string_to_metric_families(collector.render(registry).decode()))
    samples = {s.name for family in families for s in family.samples}
    standard = {s.name for family in registry.collect() for s in family.samples}
    assert samples == standard, "render() and collect() disagree on the metric names"
    names = {family.name for family in families}
    names |= {f"{family.name}_total" for family in families if family.type == "counter"}
    return frozenset(samples), frozenset(names)
