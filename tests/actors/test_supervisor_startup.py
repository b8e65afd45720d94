"""Supervision under a start-up backlog: a queued health check is not a hung child (issue 17).

At 10,000-20,000 ICMP endpoints the pool's run queue holds thousands of actors' start-up
turns; a health check sent meanwhile waits for a worker longer than its timeout. Those
children were replaced as hung, their site supervisor exhausted its intensity, and the
exits of the children it stopped escalated again, once per child (a restart storm).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.messages import Health
from fieldwatch.actors.pool import ActorPool, PooledActor
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.actors.supervisor import ChildSpec, Supervisor, SupervisorOptions, WhichChildren
from fieldwatch.policy import ChildPolicy, HealthCheck, Intensity
from tests.actors.sup_helpers import FAST_BACKOFF, Crash, Hang, Ping, Recorder, Worker, spec
from tests.waiting import wait_for


@pytest.fixture
def pool() -> Iterator[ActorPool]:
    test_pool = ActorPool(2, stuck_after_s=1.0, turn_budget=1, name="startup-test-pool")
    yield test_pool
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    test_pool.stop(timeout_s=2)


@dataclass(frozen=True)
class Chunk:
    """Busy work of a few ms that holds a pool worker, then more of it (a start-up backlog)."""

    seconds: float


class Busy(PooledActor):
    """Keeps the pool's run queue full: each message holds a worker, then re-queues itself."""

    def __init__(self, until: float) -> None:
        super().__init__()
        self.until = until

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Chunk):
            time.sleep(message.seconds)  # holds this worker, as start-up work does
            if time.monotonic() < self.until:
                self.actor_ref.tell(message)
        return None


def pooled_spec(child_id: str, rec: Recorder, pool: ActorPool, health: HealthCheck, answered: list[float]) -> ChildSpec:
    class PooledWorker(PooledActor, Worker):
        def check_health(self) -> Health:
            answered.append(time.monotonic())
            return super().check_health()

        def handle(self, message: Any) -> Any:
            if isinstance(message, Chunk):
                time.sleep(message.seconds)  # its own work, one short handler at a time
                return None
            return super().handle(message)

    PooledWorker.pool = pool

    def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return PooledWorker.start(ctx, rec)

    return ChildSpec(
        id=child_id, start=_start, policy=ChildPolicy(backoff=FAST_BACKOFF, health_check=health, shutdown_timeout_s=1.0)
    )


def start_sup(scheduler: Scheduler, specs: list[ChildSpec], **intensity: Any) -> pykka.ActorRef[Any]:
    ctx = ChildContext("root", "root", 1, 0, None, scheduler)
    return Supervisor.start(ctx, SupervisorOptions("one_for_one", Intensity(**intensity)), specs)


def test_a_health_check_queued_behind_other_actors_work_is_not_a_hang(
    scheduler: Scheduler, pool: ActorPool, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    answered: list[float] = []
    health = HealthCheck(interval_s=0.1, timeout_s=0.3, failures=1)
    sup = start_sup(scheduler, [pooled_spec("c", rec, pool, health, answered)], max_restarts=10, within_s=60)
    assert rec.wait_for(lambda ev: ("start", "c", 1) in ev)
    wait_for(lambda: len(answered) >= 2, what="the child to answer its checks while the pool is idle")
    # A backlog: 40 actors x 40 ms per turn on 2 workers = ~0.8 s per round of the run queue,
    # well over the 0.3 s timeout, for 2.5 s (the pool serves all along: nothing is stuck).
    until = time.monotonic() + 2.5
    Busy.pool = pool
    busy = [Busy.start(until) for _ in range(40)]
    for ref in busy:
        ref.tell(Chunk(0.04))
    flood_start = len(answered)
    wait_for(lambda: time.monotonic() >= until + 0.3, 10, what="the end of the backlog (the measured window)")
    assert len(answered) > flood_start, "checks were answered during the backlog (late, not lost)"
    gaps = [b - a for a, b in zip(answered[flood_start - 1 :], answered[flood_start:], strict=False)]
    assert max(gaps) > health.timeout_s, "the backlog delayed a check beyond its timeout (else no test)"
    assert sup.ask(WhichChildren(), timeout=5) == [("c", 1, True)], "queued, not hung: not replaced"
    assert "HealthCheckTimeout" not in caplog.text


def test_a_child_working_through_its_own_backlog_is_not_hung(
    scheduler: Scheduler, pool: ActorPool, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    answered: list[float] = []
    health = HealthCheck(interval_s=0.1, timeout_s=0.3, failures=1)
    sup = start_sup(scheduler, [pooled_spec("c", rec, pool, health, answered)], max_restarts=10, within_s=60)
    assert rec.wait_for(lambda ev: ("start", "c", 1) in ev)
    wait_for(lambda: len(answered) >= 2, what="the child to answer its checks while idle")
    # 50 messages of 40 ms each (2 s of its own work): at any deadline a worker is inside one
    # of its handlers, but never for as long as the timeout.
    child = rec.refs[("c", 1)]
    for _ in range(50):
        child.tell(Chunk(0.04))
    before = len(answered)
    assert child.ask(Ping(), timeout=10) == 1  # answered after the backlog, by the same generation
    wait_for(lambda: len(answered) > before, 5, what="a check answered after the backlog")
    gaps = [b - a for a, b in zip(answered[before - 1 :], answered[before:], strict=False)]
    assert max(gaps) > health.timeout_s, "the backlog delayed a check beyond its timeout (else no test)"
    assert sup.ask(WhichChildren(), timeout=5) == [("c", 1, True)], "working, not hung: not replaced"
    assert "HealthCheckTimeout" not in caplog.text


def test_a_pooled_child_hung_in_a_handler_is_still_replaced(scheduler: Scheduler, pool: ActorPool) -> None:
    rec = Recorder()
    answered: list[float] = []
    health = HealthCheck(interval_s=0.1, timeout_s=0.3, failures=1)
    sup = start_sup(scheduler, [pooled_spec("h", rec, pool, health, answered)], max_restarts=10, within_s=60)
    assert rec.wait_for(lambda ev: ("start", "h", 1) in ev)
    release = threading.Event()
    rec.refs[("h", 1)].tell(Hang(release))
    try:
        assert rec.wait_for(lambda ev: ("start", "h", 2) in ev, timeout=5), "a hung pooled child is replaced"
    finally:
        release.set()
    wait_for(lambda: sup.ask(WhichChildren(), timeout=5) == [("h", 2, True)], what="generation 2 running")


def test_an_exhausted_supervisor_escalates_once_not_once_per_stopped_child(scheduler: Scheduler) -> None:
    rec = Recorder()
    calls: list[str] = []
    done = threading.Event()

    def on_exhausted(reason: str) -> None:
        calls.append(reason)
        done.set()

    specs = [spec(f"w{i}", rec) for i in range(30)]
    ctx = ChildContext("root", "root", 1, 0, None, scheduler)
    sup = Supervisor.start(ctx, SupervisorOptions("one_for_one", Intensity(0, 60), None, on_exhausted), specs)
    assert rec.wait_for(lambda ev: len(ev) == 30)
    rec.refs[("w0", 1)].tell(Crash())  # the first restart is over the intensity (0)
    assert done.wait(5)
    wait_for(lambda: not sup.is_alive(), what="the supervisor to stop")
    assert rec.wait_for(lambda ev: len([e for e in ev if e[0] == "stop"]) == 30)
    # The 29 children stopped by the escalation report normal exits that reach the supervisor
    # before its own stop: none of them may count as a restart and escalate again.
    assert len(calls) == 1, f"escalated {len(calls)} times"
