"""Command latency: POST disable -> actors stopped and the state stored; and enable.

    .venv/bin/python benchmarks/command_bench.py [--toggles 100] [--endpoints 10]

A real daemon in this process (SQLite in a temp dir, HTTP through waitress) with
one site of N ICMP endpoints on 127.0.3.x. Each toggle measures, from sending the
request: the HTTP response (202), and the moment the site's endpoints read
`disabled` in the database (committed by the persistence actor). Actors are
stopped before the response is sent (the supervisor's RemoveChild is synchronous).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers

from fieldwatch.actors.icmp.schema import IcmpOptions  # noqa: E402
from fieldwatch.config.model import EndpointConfig, SiteConfig  # noqa: E402
from fieldwatch.storage.models import Endpoint  # noqa: E402
from tests.harness import Harness  # noqa: E402


def pct(data: list[float], p: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(round(p / 100 * (len(data) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toggles", type=int, default=100)
    ap.add_argument("--endpoints", type=int, default=10)
    args = ap.parse_args()
    import pathlib

    h = Harness(pathlib.Path(tempfile.mkdtemp()))
    eps = tuple(
        EndpointConfig(f"e{i}", "icmp", IcmpOptions(f"127.0.3.{i + 1}", interval_s=1, timeout_s=0.5))
        for i in range(args.endpoints)
    )
    daemon = h.start([SiteConfig("bench", endpoints=eps)], http=True)
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for ep in eps:
        h.wait_state("bench", ep.name, "up", 30)
    results: dict[str, list[float]] = {"disable_response": [], "disable_stored": [], "enable_response": [], "enable_started": []}

    def post(action: str) -> float:
        req = urllib.request.Request(
            f"{daemon.url}/api/v1/sites/bench/{action}", method="POST", headers={"Authorization": "Bearer test-token"}
        )
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
            resp.read()
        return t0

    for _ in range(args.toggles):
        t0 = post("disable")
        results["disable_response"].append(time.perf_counter() - t0)
        assert not [n for n in daemon.tree.snapshot() if n.path.startswith("root/sites/bench/")]
        while Endpoint.select().where(Endpoint.state != "disabled").count() > 0:
            time.sleep(0.001)
        results["disable_stored"].append(time.perf_counter() - t0)
        t0 = post("enable")
        results["enable_response"].append(time.perf_counter() - t0)
        while Endpoint.select().where(Endpoint.state == "disabled").count() > 0:
            time.sleep(0.001)
        results["enable_started"].append(time.perf_counter() - t0)
    h.stop()
    print(f"{args.toggles} toggles, {args.endpoints} endpoints in the site")
    print("| measure | p50 | p99 | max |")
    print("|---|---|---|---|")
    for key, values in results.items():
        print(f"| {key} | {statistics.median(values)*1000:.1f} ms | {pct(values, 99)*1000:.1f} ms | {max(values)*1000:.1f} ms |")


if __name__ == "__main__":
    main()
