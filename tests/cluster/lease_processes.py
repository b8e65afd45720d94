"""Lease managers in their own processes (lease_worker.py), for tests and the benchmark.

Each worker reports what it claims every 20 ms with CLOCK_MONOTONIC times, which are
comparable across processes on one machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from fieldwatch.cluster import preferred_owner
from tests.cluster.cluster_helpers import Sample

TTL = 5.0
SITES = [f"site-{i:02d}" for i in range(12)]
WORKER = os.path.join(os.path.dirname(__file__), "lease_worker.py")


class Worker:
    """One lease_worker.py process and everything it reported."""

    def __init__(self, dsn: str, schema: str, name: str, clock_offset: float = 0.0, ttl: float = TTL) -> None:
        self.name = name
        self.samples: list[Sample] = []
        self.fenced: list[tuple[float, str, int, bool | None]] = []
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, dsn, schema, name, str(ttl), str(clock_offset), ",".join(SITES)],
            stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)
            if "owned" in record:
                self.samples.append(Sample(record["t"], self.name, record["owned"]))
            else:
                self.fenced.extend((record["t"], s, e, f) for s, e, f in record["fenced"])

    def owned(self) -> dict[str, int]:
        """What it claimed in its latest report."""
        return dict(self.samples[-1].owned) if self.samples else {}

    def signal(self, sig: int) -> float:
        """Send `sig`; returns the monotonic time just before."""
        t = time.monotonic()
        os.kill(self.proc.pid, sig)
        return t

    def kill(self) -> None:
        """SIGKILL (works on a stopped process too) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def settled(workers: list[Worker]) -> bool:
    """Every site claimed exactly once, by its preferred owner, in the latest reports."""
    claimed = [site for w in workers for site in w.owned()]
    names = [w.name for w in workers]
    return sorted(claimed) == SITES and all(
        preferred_owner(site, names) == w.name for w in workers for site in w.owned())


def takeover_times(survivors: list[Worker], lost: dict[str, int], fault: float) -> dict[str, float]:
    """Seconds from the fault to the first claim of each lost site, at a newer epoch, by a survivor."""
    out: dict[str, float] = {}
    for site, epoch in lost.items():
        times = [s.t for w in survivors for s in list(w.samples)
                 if s.t > fault and s.owned.get(site, -1) > epoch]
        if times:
            out[site] = min(times) - fault
    return out


def all_samples(workers: list[Worker]) -> list[Sample]:
    return [s for w in workers for s in list(w.samples)]
