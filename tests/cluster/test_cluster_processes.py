"""Lease managers in real processes on the real PostgreSQL: SIGKILL, SIGSTOP/SIGCONT, a wrong clock.

Each worker (lease_processes.Worker, running lease_worker.py) reports what it claims
every 20 ms with CLOCK_MONOTONIC times, which are comparable across processes on one
machine; a sampler over all those reports checks that no site is ever claimed by two
instances at once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest

from tests.cluster import lease_processes
from tests.cluster.cluster_helpers import assert_never_owned_twice
from tests.cluster.lease_processes import Worker, all_samples, settled, takeover_times
from tests.waiting import wait_for

TTL = 5.0
SITES = lease_processes.SITES


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


def _fault_and_takeover(workers: list[Worker], sig: int, ttl: float = TTL) -> tuple[Worker, dict[str, int], float]:
    """Send `sig` to the owner of most sites once placement settled; wait for the takeover
    and check it took at most ttl + 5 s. Returns (victim, its leases, time of the fault)."""
    wait_for(lambda: settled(workers), timeout=6 * ttl, what="sites spread over three processes")
    victim = max(workers, key=lambda w: len(w.owned()))
    lost = victim.owned()
    survivors = [w for w in workers if w is not victim]
    fault = victim.signal(sig)
    wait_for(lambda: len(takeover_times(survivors, lost, fault)) == len(lost), timeout=ttl + 10,
             what="survivors take the lost owner's sites")
    times = takeover_times(survivors, lost, fault)
    print(f"{signal.Signals(sig).name} takeover (ttl {ttl}s): max {max(times.values()):.2f}s "
          f"over {len(times)} sites")
    assert max(times.values()) <= ttl + 5
    return victim, lost, fault


def test_sigkill_of_an_owner_is_taken_over_within_ttl_plus_5_s(spawn: Spawn) -> None:
    workers = [spawn(name) for name in ("a", "b", "c")]
    _, lost, _ = _fault_and_takeover(workers, signal.SIGKILL)
    assert assert_never_owned_twice(all_samples(workers)) >= len(SITES) + len(lost)


@pytest.mark.slow
def test_sigkill_at_the_default_15_s_lease_is_taken_over_within_20_s(spawn: Spawn) -> None:
    workers = [spawn(name, ttl=15.0) for name in ("a", "b", "c")]
    _, lost, _ = _fault_and_takeover(workers, signal.SIGKILL, ttl=15.0)
    assert assert_never_owned_twice(all_samples(workers)) >= len(SITES) + len(lost)


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
    assert assert_never_owned_twice(all_samples(workers)) >= len(SITES) + len(lost)


def test_a_clock_60_s_off_changes_nothing(spawn: Spawn) -> None:
    workers = [spawn("fast", clock_offset=60.0), spawn("slow", clock_offset=-60.0), spawn("right")]
    wait_for(lambda: settled(workers), timeout=6 * TTL, what="sites spread over three processes")
    steady_from = time.monotonic()
    epochs = {site: epoch for w in workers for site, epoch in w.owned().items()}
    # Over two whole leases, nobody's lease is judged expired: the epochs do not move.
    wait_for(lambda: min((w.samples[-1].t for w in workers), default=0.0) > steady_from + 2 * TTL,
             timeout=4 * TTL, what="two leases of reports")
    assert {site: epoch for w in workers for site, epoch in w.owned().items()} == epochs
    fast = workers[0]
    lost = fast.owned()
    fault = fast.signal(signal.SIGKILL)
    wait_for(lambda: len(takeover_times(workers[1:], lost, fault)) == len(lost), timeout=TTL + 10,
             what="the others take the killed fast-clock owner's sites")
    assert max(takeover_times(workers[1:], lost, fault).values()) <= TTL + 5
    assert assert_never_owned_twice(all_samples(workers)) >= len(SITES)
