"""The status page's routes: `/` and its assets (CSP, weight), the ETag'd overview, logs from the ring."""

from __future__ import annotations

import gzip
import json
import logging
import time
import urllib.request

import falcon.testing

from fieldwatch.actors.icmp.stats import fold_probe
from fieldwatch.http import create_app, serve
from fieldwatch.http.page import COLUMNS
from fieldwatch.logring import LogRing
from fieldwatch.status import EndpointStatus
from tests.httpapi.httpapi_fakes import make_deps
from tests.ledger_helpers import seed, set_fields

ASSETS = ("/static/page.js", "/static/page.css", "/static/favicon.svg")


def test_page_and_assets_are_self_contained() -> None:
    client = falcon.testing.TestClient(create_app(make_deps()))
    page = client.simulate_get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == "default-src 'self'"
    assert page.headers["x-content-type-options"] == "nosniff"
    for needed in ('src="/static/page.js"', 'href="/static/page.css"', 'href="/static/favicon.svg"'):
        assert needed in page.text
    total = len(page.content)
    for asset in ASSETS:
        resp = client.simulate_get(asset)
        assert resp.status_code == 200, asset
        assert resp.headers["content-security-policy"] == "default-src 'self'"
        total += len(resp.content)
    assert total <= 60 * 1024, total
    assert "javascript" in client.simulate_get("/static/page.js").headers["content-type"]
    assert client.simulate_get("/static/../page.py").status_code == 404
    assert client.simulate_get("/static/nope.js").status_code == 404
    assert client.simulate_get("/", params={"bogus": "1"}).status_code == 400
    assert client.simulate_get("/api/v1/sites").headers.get("content-security-policy") is None


def _board_deps(cache_s: float = 0.0) -> tuple[falcon.testing.TestClient, object]:
    deps = make_deps(overview_cache_s=cache_s)
    now = time.time()
    board = deps.board
    seed(board, EndpointStatus(1, "alpha", "plc", "icmp", state="up", since=now - 60, last_data_at=now,
                                  fresh_within_s=30))  # fmt: skip
    seed(board, EndpointStatus(2, "alpha", "router", "icmp", state="down", since=now - 5, down_since=now - 312,
                                  reason="no reply", last_data_at=now - 320))  # fmt: skip
    seed(board, EndpointStatus(3, "beta", "broker", "mqtt", enabled=False, state="disabled", since=now - 9))
    seed(board, EndpointStatus(4, "beta", "old", "opcua", state="up", since=now - 99, last_data_at=now - 90,
                                  fresh_within_s=30))  # fmt: skip
    board.incarnation(1, 0).observe(fold_probe, ([0.0042], 0.0))
    return falcon.testing.TestClient(create_app(deps)), deps


def test_overview_rows_counts_and_etag() -> None:
    client, deps = _board_deps(cache_s=600.0)  # one build until the change below (ages move each second)
    deps.queries.rows["alerts"].append({"site": "alpha", "endpoint": "router", "condition": "down",  # type: ignore[attr-defined]
                                        "active": True, "triggered_at": "2024-01-01T00:00:00.000Z"})
    first = client.simulate_get("/api/v1/overview")
    assert first.status_code == 200
    body = first.json
    assert body["columns"] == list(COLUMNS)
    rows = {f"{r[0]}/{r[1]}": dict(zip(COLUMNS, r, strict=True)) for r in body["endpoints"]}
    assert rows["alpha/plc"]["state"] == "up" and rows["alpha/plc"]["rtt_ms"] == 4.2
    assert rows["alpha/router"]["state"] == "down" and rows["alpha/router"]["reason"] == "no reply"
    assert rows["alpha/router"]["down_since"] < rows["alpha/router"]["since"]
    assert rows["alpha/router"]["rtt_ms"] is None
    assert rows["beta/old"]["rtt_ms"] is None and rows["beta/broker"]["rtt_ms"] is None  # kinds without an RTT
    assert body["topic_kinds"] == ["mqtt"]  # the page offers a Topics button for these kinds only
    # the readers' freshness rule: `up` with data older than stale_after_s is shown stale, with why
    assert rows["beta/old"]["state"] == "stale" and "no data within 30s" in rows["beta/old"]["reason"]
    assert body["counts"] == {"up": 1, "down": 1, "stale": 1, "disabled": 1, "connecting": 0, "faulty": 0}
    assert body["sites"] == [{"name": "alpha", "enabled": True}, {"name": "beta", "enabled": True}]
    assert [a["endpoint"] for a in body["alerts"]] == ["router"] and body["ready"] is True
    etag = first.headers["etag"]

    again = client.simulate_get("/api/v1/overview", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    set_fields(deps.board, 2, state="up", since=time.time(), down_since=None, reason=None)
    object.__setattr__(deps, "overview_cache_s", 0.0)  # frozen deps: rebuild from now on
    changed = client.simulate_get("/api/v1/overview", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json["counts"]["down"] == 0


def test_overview_keeps_the_live_states_when_storage_fails() -> None:
    client, deps = _board_deps()
    deps.queries.fail = True  # type: ignore[attr-defined]
    body = client.simulate_get("/api/v1/overview").json
    assert body["storage_error"] == "database is locked"
    assert len(body["endpoints"]) == 4 and body["alerts"] == [] and body["events"] == []


def _ring_with_lines() -> tuple[LogRing, logging.Logger]:
    """A ring on a logger of its own (not propagated: the test's lines stay out of the root's handlers)."""
    ring = LogRing(capacity=100)
    ring.setFormatter(logging.Formatter("%(asctime)s.000Z %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    log = logging.getLogger("fieldwatch.test.page-ring")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(ring)
    return ring, log


def test_log_ring_bounds_lines_and_splits_records() -> None:
    ring, log = _ring_with_lines()
    try:
        for i in range(150):
            log.info("line %d", i)
        found, last = ring.lines()
        assert len(found) == 100 and found[-1].endswith("line 149") and last == 150
        log.error("boom\nsecond line %s", "x" * 10000)
        new, last2 = ring.lines(after=last)
        assert len(new) == 2 and new[0].endswith("boom") and len(new[1]) == 8192 and last2 == 152
    finally:
        log.removeHandler(ring)


def test_logs_route_without_a_file_reads_the_ring() -> None:
    ring, log = _ring_with_lines()
    try:
        for i in range(5):
            log.info("n%d", i)
        log.warning("careful")
        deps = make_deps(log_file=None, log_ring=ring, overview_cache_s=0.0)
        client = falcon.testing.TestClient(create_app(deps))
        body = client.simulate_get("/api/v1/logs", params={"lines": "3"}).json
        assert [i["line"].rsplit(" ", 1)[-1] for i in body["items"]] == ["n3", "n4", "careful"]
        assert [i["level"] for i in client.simulate_get("/api/v1/logs", params={"level": "warning"}).json["items"]] == [
            "warning"
        ]
        assert [w["line"].rsplit(" ", 1)[-1] for w in client.simulate_get("/api/v1/overview").json["warnings"]] == [
            "careful"
        ]
        # followed through waitress: the last line first, then a line logged while streaming
        server = serve(create_app(deps), "127.0.0.1:0", threads=2)
        try:
            url = f"{server.url}/api/v1/logs?lines=1&follow=1&max_s=5"
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert json.loads(resp.readline())["line"].endswith("careful")
                log.error("while following")
                line = resp.readline()
                while not line.strip():  # heartbeats
                    line = resp.readline()
                assert json.loads(line)["line"].endswith("while following")
        finally:
            server.stop()
        assert deps.streams.open == 0
    finally:
        log.removeHandler(ring)


def test_overview_built_once_per_interval() -> None:
    client, deps = _board_deps()
    cached = falcon.testing.TestClient(create_app(make_deps(board=deps.board, overview_cache_s=60.0)))  # type: ignore[attr-defined]
    first = cached.simulate_get("/api/v1/overview")
    set_fields(deps.board, 2, state="up", since=time.time(), down_since=None)  # type: ignore[attr-defined]
    assert cached.simulate_get("/api/v1/overview").headers["etag"] == first.headers["etag"]  # within the interval
    assert client.simulate_get("/api/v1/overview").json["counts"]["down"] == 0  # interval 0: rebuilt


def test_overview_gzipped_when_accepted() -> None:
    client, _ = _board_deps(cache_s=600.0)  # one build: ages in a rebuild a second later would change the ETag
    plain = client.simulate_get("/api/v1/overview")
    packed = client.simulate_get("/api/v1/overview", headers={"Accept-Encoding": "gzip, deflate"})
    assert plain.headers.get("content-encoding") is None
    assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
    assert json.loads(gzip.decompress(packed.content)) == plain.json
    assert packed.headers["etag"] == plain.headers["etag"][:-1] + '-gz"'  # its own strong ETag
    again = client.simulate_get("/api/v1/overview", headers={"Accept-Encoding": "gzip",
                                                              "If-None-Match": packed.headers["etag"]})  # fmt: skip
    assert again.status_code == 304
    assert client.simulate_get("/api/v1/overview", headers={"If-None-Match": packed.headers["etag"]}).status_code == 200
