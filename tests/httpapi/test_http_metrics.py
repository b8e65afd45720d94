"""The Prometheus collector: every SPEC section 7 metric, freshness, vanishing series, promtool."""

from __future__ import annotations

import shutil
import subprocess
import time

import falcon.testing
import prometheus_client
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fieldwatch import states
from fieldwatch.actors.icmp.stats import fold_probe
from fieldwatch.actors.tree import TreeView
from fieldwatch.http import AppDeps, FieldwatchCollector, create_app
from fieldwatch.ledger import EndpointLedger
from fieldwatch.status import EndpointStatus
from tests.httpapi.httpapi_fakes import FakeStorage, make_deps
from tests.ledger_helpers import new_ledger, seed


def _board() -> EndpointLedger:
    board = new_ledger()
    now = time.time()
    seed(board, EndpointStatus(1, "alpha", "plc", "opcua", state=states.UP, last_data_at=now, fresh_within_s=30,
                                  restarts=2, reconnects=1, reason="up"))  # fmt: skip
    seed(board, EndpointStatus(2, "alpha", "router", "icmp", state=states.UP, last_data_at=now - 100,
                                  fresh_within_s=30))  # fmt: skip
    seed(board, EndpointStatus(3, "beta", "broker", "mqtt", state=states.FAULTY,
                                  reason='host "x" does not resolve\nsecret-ish text'))  # fmt: skip
    board.incarnation(1, 0).count("opcua_reads", "ok", 7)
    board.incarnation(1, 0).count("opcua_reads", "bad_status")
    board.incarnation(3, 0).count("mqtt_messages", "stored", 5)
    board.incarnation(3, 0).count("mqtt_messages", "parse_error", 2)
    board.incarnation(2, 0).observe(fold_probe, ([0.0004, 0.003, 0.003, 3.0], 0.25))
    board.incarnation(3, 0).alert("faulty", "warning", "", "")
    board.incarnation(3, 0).alert("offline", "warning", "", "dev1")
    board.incarnation(3, 0).alert("offline", "warning", "", "dev2")
    board.incarnation(1, 0).alert("threshold", "warning", "", "level")
    board.incarnation(1, 0).value("level", None, 4.0)
    board.incarnation(1, 0).value("level", None, 4.25)  # the latest wins
    board.incarnation(3, 0).value("temp", 'dev "1"\\', 21.5)  # label values are escaped
    return board


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    reg = prometheus_client.CollectorRegistry()
    tree = TreeView()
    tree.count_restart("root/sites/alpha")
    tree.count_restart("root/sites/alpha")
    reg.register(FieldwatchCollector(_board(), tree, FakeStorage()))
    return reg


def test_endpoint_metrics(registry: prometheus_client.CollectorRegistry) -> None:
    v = registry.get_sample_value
    plc = {"site": "alpha", "endpoint": "plc", "kind": "opcua"}
    router = {"site": "alpha", "endpoint": "router", "kind": "icmp"}
    broker = {"site": "beta", "endpoint": "broker", "kind": "mqtt"}
    assert v("fieldwatch_endpoint_up", plc) == 1.0
    assert v("fieldwatch_endpoint_up", router) == 0.0  # up with data 100 s old is not up
    assert v("fieldwatch_endpoint_state", {**router, "state": "stale"}) == 1.0
    assert v("fieldwatch_endpoint_state", {**router, "state": "up"}) == 0.0
    for labels, current in ((plc, "up"), (broker, "faulty")):
        values = {s: v("fieldwatch_endpoint_state", {**labels, "state": s}) for s in states.ALL_STATES}
        assert values == {s: float(s == current) for s in states.ALL_STATES}
    assert v("fieldwatch_endpoint_last_data_timestamp_seconds", plc) == pytest.approx(time.time(), abs=5)
    assert v("fieldwatch_endpoint_last_data_timestamp_seconds", broker) is None
    assert v("fieldwatch_endpoint_restarts_total", plc) == 2.0
    assert v("fieldwatch_endpoint_reconnects_total", plc) == 1.0
    assert v("fieldwatch_opcua_reads_total", {**plc, "result": "ok"}) == 7.0
    assert v("fieldwatch_opcua_reads_total", {**plc, "result": "bad_status"}) == 1.0
    assert v("fieldwatch_opcua_reads_total", {**plc, "result": "error"}) == 0.0
    assert v("fieldwatch_mqtt_messages_total", {**broker, "result": "stored"}) == 5.0
    assert v("fieldwatch_mqtt_messages_total", {**broker, "result": "ignored"}) == 0.0
    assert v("fieldwatch_mqtt_messages_total", {**broker, "result": "duplicate"}) == 0.0  # always exported
    assert v("fieldwatch_mqtt_messages_total", {**plc, "result": "stored"}) is None
    assert v("fieldwatch_icmp_rtt_seconds_bucket", {**router, "le": "0.0005"}) == 1.0
    assert v("fieldwatch_icmp_rtt_seconds_bucket", {**router, "le": "0.005"}) == 3.0
    assert v("fieldwatch_icmp_rtt_seconds_bucket", {**router, "le": "2.5"}) == 3.0
    assert v("fieldwatch_icmp_rtt_seconds_bucket", {**router, "le": "+Inf"}) == 4.0
    assert v("fieldwatch_icmp_rtt_seconds_count", router) == 4.0
    assert v("fieldwatch_icmp_rtt_seconds_sum", router) == pytest.approx(3.0064)
    assert v("fieldwatch_icmp_rtt_seconds_count", plc) is None
    assert v("fieldwatch_icmp_packet_loss_ratio", router) == 0.25
    assert v("fieldwatch_alerts_active", {**broker, "condition": "offline"}) == 2.0
    assert v("fieldwatch_alerts_active", {**broker, "condition": "faulty"}) == 1.0
    assert v("fieldwatch_alerts_active", {**broker, "condition": "down"}) == 0.0
    assert v("fieldwatch_alerts_active", {**plc, "condition": "threshold"}) == 1.0


def test_global_metrics(registry: prometheus_client.CollectorRegistry) -> None:
    v = registry.get_sample_value
    assert v("fieldwatch_storage_queue_depth") == 3.0
    assert v("fieldwatch_storage_writes_total") == 120.0
    assert v("fieldwatch_storage_write_errors_total") == 2.0
    assert v("fieldwatch_storage_write_seconds_bucket", {"le": "0.001"}) == 1.0
    assert v("fieldwatch_storage_write_seconds_bucket", {"le": "0.25"}) == 3.0
    assert v("fieldwatch_storage_write_seconds_count") == 3.0
    assert v("fieldwatch_storage_write_seconds_sum") == pytest.approx(0.2035)
    assert v("fieldwatch_supervisor_restarts_total", {"supervisor": "root/sites/alpha"}) == 2.0


def test_reading_values_and_their_series_cap() -> None:
    board = new_ledger(max_reading_series=2)
    seed(board, EndpointStatus(1, "alpha", "plc", "opcua"))
    seed(board, EndpointStatus(3, "beta", "broker", "mqtt"))
    board.incarnation(1, 0).value("level", None, 1.5)
    board.incarnation(3, 0).value("temp", "d1", 20.0)
    for _ in range(3):
        board.incarnation(3, 0).value("temp", "d2", 30.0)  # a third series: left out, counted once
    board.incarnation(3, 0).value("temp", "d1", 21.0)  # a kept series still moves
    reg = prometheus_client.CollectorRegistry()
    reg.register(FieldwatchCollector(board, TreeView(), FakeStorage()))
    v = reg.get_sample_value
    plc = {"site": "alpha", "endpoint": "plc", "kind": "opcua"}
    broker = {"site": "beta", "endpoint": "broker", "kind": "mqtt"}
    assert v("fieldwatch_reading_value", {**plc, "name": "level", "device": ""}) == 1.5
    assert v("fieldwatch_reading_value", {**broker, "name": "temp", "device": "d1"}) == 21.0
    assert v("fieldwatch_reading_value", {**broker, "name": "temp", "device": "d2"}) is None
    assert v("fieldwatch_reading_series_dropped_total") == 1.0
    board.remove(1)  # its series free room under the cap
    board.incarnation(3, 0).value("temp", "d2", 30.0)
    assert v("fieldwatch_reading_value", {**broker, "name": "temp", "device": "d2"}) == 30.0


def test_series_vanish_with_the_endpoint() -> None:
    board = _board()
    reg = prometheus_client.CollectorRegistry()
    reg.register(FieldwatchCollector(board, TreeView(), FakeStorage()))
    broker = {"site": "beta", "endpoint": "broker", "kind": "mqtt"}
    assert reg.get_sample_value("fieldwatch_endpoint_up", broker) == 0.0
    board.remove(3)
    text = generate_latest(reg).decode()
    assert 'endpoint="broker"' not in text
    assert reg.get_sample_value("fieldwatch_endpoint_up", broker) is None


def _samples(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    return {
        (s.name, frozenset(s.labels.items()), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fast_render_equals_the_standard_encoder(registry: prometheus_client.CollectorRegistry) -> None:
    collector = FieldwatchCollector(_board(), TreeView(), FakeStorage())
    reg = prometheus_client.CollectorRegistry()
    reg.register(collector)
    extra = prometheus_client.Counter("other_things", "another collector on the same registry", registry=reg)
    extra.inc(4)
    fast = collector.render(reg).decode()
    standard = generate_latest(reg).decode()
    assert fast.count("# TYPE fieldwatch_endpoint_up ") == 1  # not written twice
    assert _samples(fast) == _samples(standard)
    assert "other_things_total 4.0" in fast


def test_no_reason_text_in_labels(client: falcon.testing.TestClient, deps: AppDeps) -> None:
    seed(deps.board, EndpointStatus(9, "gamma", "x", "icmp", state=states.DOWN, reason="connection refused"))
    body = client.simulate_get("/metrics").text
    assert "refused" not in body


def test_metrics_route_and_promtool(tmp_path: object) -> None:
    deps = make_deps()
    for i, status in enumerate(_board().snapshot()):
        inc = seed(deps.board, status)
        if i == 0:
            inc.alert("down", "critical", "")
        else:
            inc.resolve("down")
    resp = falcon.testing.TestClient(create_app(deps)).simulate_get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "fieldwatch_endpoint_up{" in resp.text
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not installed (Debian package 'prometheus'): skipping promtool check metrics")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], input=resp.content, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert check.stdout.strip() == b"" and check.stderr.strip() == b"", check.stderr.decode()


def test_empty_board_renders(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200 and "# TYPE fieldwatch_endpoint_up gauge" in resp.text


def test_render_time_with_10000_endpoints() -> None:
    board = new_ledger()
    kinds = ("icmp", "mqtt", "opcua")
    for i in range(10_000):
        seed(board, EndpointStatus(i, f"site-{i // 10:04d}", f"ep-{i % 10}", kinds[i % 3], state=states.UP,
                                      last_data_at=time.time(), fresh_within_s=30))  # fmt: skip
    reg = prometheus_client.CollectorRegistry()
    collector = FieldwatchCollector(board, TreeView(), FakeStorage())
    reg.register(collector)
    best = min(_timed(lambda: collector.render(reg)) for _ in range(3))
    assert best < 0.5, f"/metrics render took {best:.3f} s with 10,000 endpoints"


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started
