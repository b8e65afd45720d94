"""Lease managers in real processes on the real PostgreSQL: SIGKILL, SIGSTOP/SIGCONT, a wrong clock.

Each worker (lease_worker.py) reports what it claims every 20 ms with CLOCK_MONOTONIC
times, which are comparable across processes on one machine; a sampler over all those
reports checks that no site is ever claimed by two instances at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from cluster_helpers import Sample, assert_never_owned_twice
from harness import wait_for

from fieldwatch.cluster import preferred_owner

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


Spawn = Callable[..., Worker]


@pytest.fixture()
def spawn(pg_schema: tuple[str, str]) -> Iterator[Spawn]:
    """Starts workers on the test schema; kills them all at teardown."""
    dsn, schema = pg_schema
    workers: list[Worker] = []

    def factory(name: str, clock_offset: float = 0.0, ttl: float = TTL) -> Worker:
        worker = Worker(dsn, schema, name, clock_offset, ttl)
        workers.append(worker)
        return worker

    yield factory
    for worker in workers:
        worker.kill()


def _settled(workers: list[Worker]) -> bool:
    """Every site claimed exactly once, by its preferred owner, in the latest reports."""
    claimed = [site for w in workers for site in w.owned()]
    names = [w.name for w in workers]
    return sorted(claimed) == SITES and all(
        preferred_owner(site, names) == w.name for w in workers for site in w.owned())


def _first_claim_after(workers: list[Worker], site: str, after: float) -> float | None:
    times = [s.t for w in workers for s in list(w.samples) if s.t > after and site in s.owned]
    return min(times) if times else None


def _takeover_times(survivors: list[Worker], lost: dict[str, int], fault: float) -> dict[str, float]:
    """Seconds from the fault to the first claim of each lost site, at a newer epoch, by a survivor."""
    out: dict[str, float] = {}
    for site, epoch in lost.items():
        times = [s.t for w in survivors for s in list(w.samples)
                 if s.t > fault and s.owned.get(site, -1) > epoch]
        if times:
            out[site] = min(times) - fault
    return out


def _all_samples(workers: list[Worker]) -> list[Sample]:
    return [s for w in workers for s in list(w.samples)]


def _fault_and_takeover(workers: list[Worker], sig: int, ttl: float = TTL) -> tuple[Worker, dict[str, int], float]:
    """Send `sig` to the owner of most sites once placement settled; wait for the takeover
    and check it took at most ttl + 5 s. Returns (victim, its leases, time of the fault)."""
    wait_for(lambda: _settled(workers), timeout=6 * ttl, what="sites spread over three processes")
    victim = max(workers, key=lambda w: len(w.owned()))
    lost = victim.owned()
    survivors = [w for w in workers if w is not victim]
    fault = victim.signal(sig)
    wait_for(lambda: len(_takeover_times(survivors, lost, fault)) == len(lost), timeout=ttl + 10,
             what="survivors take the lost owner's sites")
    times = _takeover_times(survivors, lost, fault)
    print(f"{signal.Signals(sig).name} takeover (ttl {ttl}s): max {max(times.values()):.2f}s "
          f"over {len(times)} sites")
    assert max(times.values()) <= ttl + 5
    return victim, lost, fault


def test_sigkill_of_an_owner_is_taken_over_within_ttl_plus_5_s(spawn: Spawn) -> None:
    workers = [spawn(name) for name in ("a", "b", "c")]
    _, lost, _ = _fault_and_takeover(workers, signal.SIGKILL)
    assert assert_never_owned_twice(_all_samples(workers)) >= len(SITES) + len(lost)


@pytest.mark.slow
def test_sigkill_at_the_default_15_s_lease_is_taken_over_within_20_s(spawn: Spawn) -> None:
    workers = [spawn(name, ttl=15.0) for name in ("a", "b", "c")]
    _, lost, _ = _fault_and_takeover(workers, signal.SIGKILL, ttl=15.0)
    assert assert_never_owned_twice(_all_samples(workers)) >= len(SITES) + len(lost)


def test_sigstop_past_the_ttl_then_sigcont_never_claims_and_is_fenced(spawn: Spawn) -> None:
    workers = [spawn(name) for name in ("a", "b", "c")]
    victim, lost, _ = _fault_and_takeover(workers, signal.SIGSTOP)
    woke = victim.signal(signal.SIGCONT)
    old = set(lost.items())
    wait_for(lambda: {(s, e) for t, s, e, f in list(victim.fenced) if t > woke and f} >= old,
             timeout=10, what="the woken owner's fencing checks of its old epochs")
    after = [s for s in list(victim.samples) if s.t > woke]
    assert after, "the woken worker reported nothing"
    assert all(not (old & set(s.owned.items())) for s in after), "claimed a lost epoch after waking"
    checks = [f for t, s, e, f in list(victim.fenced) if t > woke and (s, e) in old]
    assert checks and all(checks), "a fencing check of an old epoch passed after the takeover"
    assert assert_never_owned_twice(_all_samples(workers)) >= len(SITES) + len(lost)


def test_a_clock_60_s_off_changes_nothing(spawn: Spawn) -> None:
    workers = [spawn("fast", clock_offset=60.0), spawn("slow", clock_offset=-60.0), spawn("right")]
    wait_for(lambda: _settled(workers), timeout=6 * TTL, what="sites spread over three processes")
    settled = time.monotonic()
    epochs = {site: epoch for w in workers for site, epoch in w.owned().items()}
    # Over two whole leases, nobody's lease is judged expired: the epochs do not move.
    wait_for(lambda: min((w.samples[-1].t for w in workers), default=0.0) > settled + 2 * TTL,
             timeout=4 * TTL, what="two leases of reports")
    assert {site: epoch for w in workers for site, epoch in w.owned().items()} == epochs
    fast = workers[0]
    lost = fast.owned()
    fault = fast.signal(signal.SIGKILL)
    wait_for(lambda: len(_takeover_times(workers[1:], lost, fault)) == len(lost), timeout=TTL + 10,
             what="the others take the killed fast-clock owner's sites")
    assert max(_takeover_times(workers[1:], lost, fault).values()) <= TTL + 5
    assert assert_never_owned_twice(_all_samples(workers)) >= len(SITES)
