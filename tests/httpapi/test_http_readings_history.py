"""GET /api/v1/readings through waitress on a real daemon and database: until, step, keyset pages."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from fieldwatch.actors.opcua.schema import OpcuaOptions
from fieldwatch.config.model import EndpointConfig, SiteConfig
from fieldwatch.storage import writes as w
from tests.harness import Harness

T0 = 1_764_000_000.0  # a minute boundary


def _get(base: str, **params: Any) -> tuple[int, dict[str, Any]]:
    url = f"{base}/api/v1/readings?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_until_step_and_pages_over_http(tmp_path: Path) -> None:
    site = SiteConfig("plant", enabled=False, endpoints=(
        EndpointConfig("plc", "opcua", OpcuaOptions("opc.tcp://127.0.0.1:1")),))  # fmt: skip
    harness = Harness(tmp_path)
    try:
        daemon = harness.start([site], http=True)
        endpoint_id = harness.endpoint_id("plant", "plc")
        generation = harness.status("plant", "plc").generation
        # three hours of a reading every 10 s, sent late (source time in the past), values 0..1079
        daemon.storage.submit_many(
            w.ReadingRecord(endpoint_id=endpoint_id, generation=generation, name="level", value_num=float(i),
                            source_time=T0 + 10 * i, received_at=T0 + 10_800 + i)
            for i in range(1080)
        )  # fmt: skip
        harness.flush(30)
        base = daemon.url
        status, hour = _get(base, site="plant", endpoint="plc", name="level", since=T0, until=T0 + 3600, limit=1000)
        assert status == 200 and len(hour["items"]) == 360 and hour["next"] is None
        assert hour["items"][0]["value"] == 359.0 and hour["items"][-1]["value"] == 0.0  # until is exclusive
        status, minutes = _get(base, name="level", since=T0, until=T0 + 10_800, step=60, limit=100)
        assert status == 200 and len(minutes["items"]) == 100 and minutes["next"]
        first = minutes["items"][0]
        assert first["time"] == "2025-11-24T18:59:00.000Z" and first["count"] == 6
        assert (first["min"], first["max"], first["avg"], first["last"]) == (1074.0, 1079.0, 1076.5, 1079.0)
        seen, cursor = list(minutes["items"]), minutes["next"]
        while cursor:
            status, page = _get(base, name="level", since=T0, until=T0 + 10_800, step=60, limit=100, cursor=cursor)
            assert status == 200
            seen += page["items"]
            cursor = page["next"]
        assert len(seen) == 180 and sum(b["count"] for b in seen) == 1080
        assert len({b["time"] for b in seen}) == 180
        status, hours = _get(base, name="level", since=T0, until=T0 + 10_800, step=3600)
        assert [b["count"] for b in hours["items"]] == [360, 360, 360]
        assert [b["last"] for b in hours["items"]] == [1079.0, 719.0, 359.0]
        status, two = _get(base, name="level", since=T0, until=T0 + 10_800, step=7200)
        assert [(b["time"], b["count"]) for b in two["items"]] == [
            ("2025-11-24T18:00:00.000Z", 360), ("2025-11-24T16:00:00.000Z", 720)]  # fmt: skip
        for bad in ({"step": 90}, {"step": 0}, {"until": "soon"}):
            status, body = _get(base, **bad)
            assert status == 400 and body["description"], bad
        for empty in ({"since": T0, "until": T0}, {"since": T0, "until": T0 - 60, "step": 60}):
            status, body = _get(base, name="level", **empty)  # an empty range (`until` is exclusive)
            assert (status, body["items"], body["next"]) == (200, [], None), empty
    finally:
        harness.stop()
