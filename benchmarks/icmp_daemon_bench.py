"""ICMP endpoints in the real daemon: N actors (pooled runtime) on loopback at interval_s.

    .venv/bin/python benchmarks/icmp_daemon_bench.py --endpoints 10000 --interval 10 --rounds 3

A real Daemon in this process (SQLite in a temp dir, no HTTP) with N ICMP endpoints
on 127.x.y.z, all under one site supervisor (health checks on). Measures the time
until every endpoint is `up`, then over `rounds` intervals: probe start lateness
(first send vs the tick's due time, from the shared prober), process CPU (% of one
core), RSS, OS threads, and the storage queue. Prints a markdown row.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from harness import Harness  # noqa: E402

from fieldwatch.actors.icmp import prober as prober_mod  # noqa: E402
from fieldwatch.config.model import EndpointConfig, IcmpOptions, SiteConfig  # noqa: E402
from fieldwatch.status import effective_state  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=10000)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    lateness: list[float] = []
    lock = threading.Lock()
    original_submit = prober_mod.Prober.submit

    def submit(self, address, *, count, timeout_s, callback, due=None, interval_s=0.2):  # type: ignore[no-untyped-def]
        def _cb(result):  # type: ignore[no-untyped-def]
            with lock:
                lateness.append(result.lateness_s)
            callback(result)

        return original_submit(self, address, count=count, timeout_s=timeout_s, callback=_cb, due=due, interval_s=interval_s)

    prober_mod.Prober.submit = submit  # instrumentation only: record each probe's lateness

    eps = []
    for i in range(args.endpoints):
        addr = f"127.{1 + i // 65000}.{(i // 250) % 250}.{1 + i % 250}"
        eps.append(EndpointConfig(f"h{i}", "icmp", IcmpOptions(addr, interval_s=args.interval, timeout_s=1.0)))
    h = Harness(pathlib.Path(tempfile.mkdtemp()))
    import logging

    rss0 = rss_mb()
    t0 = time.monotonic()
    daemon = h.start([SiteConfig("bench", endpoints=tuple(eps))])
    logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic() - t0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ups = sum(1 for s in daemon.board.snapshot() if effective_state(s)[0] == "up")
        if ups == args.endpoints:
            break
        time.sleep(0.5)
    all_up = time.monotonic() - t0
    with lock:
        lateness.clear()
    c0, w0 = cpu_s(), time.monotonic()
    peak_queue = 0
    end = time.monotonic() + args.rounds * args.interval
    while time.monotonic() < end:
        peak_queue = max(peak_queue, daemon.storage.queue_depth)
        time.sleep(0.2)
    cpu_pct = 100 * (cpu_s() - c0) / (time.monotonic() - w0)
    not_up = sum(1 for s in daemon.board.snapshot() if effective_state(s)[0] != "up")
    threads = threading.active_count()
    restarts = sum(s.restarts for s in daemon.board.snapshot())
    print(f"endpoint restarts (health-check replacements etc.): {restarts}; supervisor restarts: {daemon.tree.supervisor_restarts()}")
    rss = rss_mb()
    with lock:
        data = sorted(lateness)
    h.stop()
    q = statistics.quantiles(data, n=100)
    print(f"endpoints={args.endpoints} interval={args.interval}s rounds={args.rounds} probes={len(data)}")
    print(f"daemon start {started:.1f}s, all up after {all_up:.1f}s; endpoints not up during rounds: {not_up}")
    print("| endpoints | start -> all up | CPU % of one core | RSS (MB, +from start) | threads | lateness p50 / p99 / max | peak write queue |")
    print(
        f"| {args.endpoints} @ {args.interval:g}s | {all_up:.1f} s | {cpu_pct:.0f} % | {rss:.0f} (+{rss - rss0:.0f}) | {threads} "
        f"| {statistics.median(data)*1000:.1f} / {q[98]*1000:.1f} / {max(data)*1000:.1f} ms | {peak_queue} |"
    )


if __name__ == "__main__":
    main()
