"""`HealthChecks` on its own: the sweep, reports judged at the next sweep, deadlines, dead children
(through the supervisor: tests/actors/test_supervisor.py and test_supervisor_startup.py)."""

from __future__ import annotations

import gc
import queue
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest

from fieldwatch.actors.health import ChildHealth, HealthChecks, Sweep
from fieldwatch.actors.messages import Health, HealthCheck, HealthReport
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.policy import HealthCheck as HealthCheckPolicy
from tests.waiting import wait_for


class Mailbox(pykka.ThreadingActor):
    """A child that never answers by itself: the test reads its health checks."""

    def __init__(self, got: queue.SimpleQueue[Any]) -> None:
        super().__init__()
        self.got = got

    def on_receive(self, message: Any) -> None:
        self.got.put(message)


@dataclass
class Kid:
    child_id: str
    ref: pykka.ActorRef[Any] | None
    health_policy: HealthCheckPolicy
    generation: int = 1
    health: ChildHealth = field(default_factory=ChildHealth)


@dataclass
class Harness:
    kid: Kid
    got: queue.SimpleQueue[Any]
    checks: HealthChecks[Kid]
    replaced: list[tuple[str, str]] = field(default_factory=list)
    crashed: list[Kid] = field(default_factory=list)
    told: list[Any] = field(default_factory=list)

    def sweep_until(self, done: Callable[[], Any], what: str) -> Any:
        return wait_for(lambda: self.checks.sweep() or done(), what=what)

    def next_check(self) -> HealthCheck:
        self.sweep_until(lambda: not self.got.empty(), "a health check sent")
        check = self.got.get_nowait()
        assert isinstance(check, HealthCheck)
        return check

    def answer(self, check: HealthCheck, ok: bool, *, generation: int = 1, seq: int | None = None) -> None:
        report = HealthReport("kid", generation, check.seq if seq is None else seq, Health(ok, "" if ok else "bad"))
        check.reply_to.tell(report)


@pytest.fixture
def make() -> Iterator[Callable[..., Harness]]:
    refs: list[pykka.ActorRef[Any]] = []

    def _make(**policy: Any) -> Harness:
        got: queue.SimpleQueue[Any] = queue.SimpleQueue()
        ref = Mailbox.start(got)
        refs.append(ref)
        kid = Kid("kid", ref, HealthCheckPolicy(**{"interval_s": 0.02, "timeout_s": 5.0, **policy}))
        box: dict[str, Harness] = {}
        checks: HealthChecks[Kid] = HealthChecks(
            find=lambda child_id: kid if child_id == kid.child_id else None,
            replace=lambda child, exc_type, message: box["h"].replaced.append((exc_type, message)),
            crashed=lambda child: box["h"].crashed.append(child),
            tell_self=lambda message: box["h"].told.append(message),
        )
        box["h"] = harness = Harness(kid, got, checks)
        checks.schedule(kid)
        return harness

    yield _make
    for ref in refs:
        ref.stop()


def test_a_report_is_judged_at_the_next_sweep(make: Callable[..., Harness]) -> None:
    h = make(failures=2)
    check = h.next_check()
    h.answer(check, False, generation=2)  # another generation's answer
    h.answer(check, False, seq=check.seq + 1)  # an answer to another check
    h.answer(check, False)
    assert (h.kid.health.pending, h.kid.health.failures) == (check.seq, 0)  # not judged yet
    h.checks.sweep()
    # Only the right answer counted. The same sweep may already have sent the next check (the
    # interval is 20 ms): the judged one is no longer pending either way.
    assert h.kid.health.failures == 1
    assert h.kid.health.pending in (None, check.seq + 1)
    assert h.replaced == []  # one failure of two
    h.answer(h.next_check(), True)
    h.checks.sweep()
    assert h.kid.health.failures == 0  # a good answer resets the count
    for _ in range(2):
        h.answer(h.next_check(), False)
        h.checks.sweep()
    assert h.replaced == [("HealthCheckFailed", "bad")]


def test_a_check_without_answer_times_out(make: Callable[..., Harness]) -> None:
    h = make(timeout_s=0.05)
    check = h.next_check()
    assert h.kid.health.pending == check.seq
    h.sweep_until(lambda: h.replaced, "the deadline acted on")
    assert h.replaced == [("HealthCheckTimeout", "no answer to a health check within 0.05s")]
    assert h.crashed == []


def test_a_cancelled_check_is_not_judged(make: Callable[..., Harness]) -> None:
    h = make(timeout_s=0.05)
    check = h.next_check()
    h.checks.cancel(h.kid)  # the supervisor stopped the child (same generation: only the cancel stops it)
    h.kid.ref = None
    h.answer(check, False)
    with pytest.raises(AssertionError):  # neither the answer nor the deadline
        h.sweep_until(lambda: h.replaced or h.kid.health.failures, "the check of a stopped child judged")


def test_a_dead_child_is_a_crash(make: Callable[..., Harness]) -> None:
    h = make()
    assert h.kid.ref is not None
    h.kid.ref.stop()
    h.sweep_until(lambda: h.crashed, "the dead child reported")
    assert h.crashed == [h.kid] and h.replaced == []


def test_one_sweep_in_the_mailbox_at_a_time(make: Callable[..., Harness]) -> None:
    h = make()
    scheduler = Scheduler()
    scheduler.start()
    try:
        h.checks.start(scheduler)
        wait_for(lambda: h.told == [Sweep()], what="a sweep requested")
        with pytest.raises(AssertionError):  # not another until that one ran
            wait_for(lambda: len(h.told) > 1, timeout=0.3, what="a second sweep before the first ran")
        h.checks.sweep()
        wait_for(lambda: len(h.told) == 2, what="the next sweep requested")
        h.checks.stop()
        h.checks.sweep()
        with pytest.raises(AssertionError):
            wait_for(lambda: len(h.told) > 2, timeout=0.3, what="a sweep after stop")
    finally:
        scheduler.stop()


def test_supervisors_on_one_scheduler_share_one_tick(make: Callable[..., Harness]) -> None:
    first, second = make(), make()
    scheduler = Scheduler()
    scheduler.start()
    try:
        first.checks.start(scheduler)
        second.checks.start(scheduler)
        assert scheduler.pending == 1  # one timer wakes the scheduler's thread for both
        wait_for(lambda: first.told == [Sweep()] and second.told == [Sweep()], what="a sweep requested of each")
        first.checks.stop()
        second.checks.sweep()  # its next sweep is requested by the shared tick still
        wait_for(lambda: len(second.told) == 2, what="the next sweep of the one still started")
        first.checks.sweep()
        with pytest.raises(AssertionError):
            wait_for(lambda: len(first.told) > 1, timeout=0.3, what="a sweep of the stopped one")
        second.checks.stop()
        wait_for(lambda: scheduler.pending == 0, what="no timer left once both stopped")
    finally:
        scheduler.stop()
    gone = weakref.ref(scheduler)
    scheduler = None  # type: ignore[assignment]
    gc.collect()
    assert gone() is None  # the shared tick does not keep a stopped scheduler alive


class _Recorder:
    """A child's ref that answers nothing and records when each check was sent (fake clock)."""

    actor_inbox = None  # not a pooled actor: every check is a message

    def __init__(self, child_id: str, sent: dict[str, list[float]], clock: list[float]) -> None:
        self.child_id, self.sent, self.clock = child_id, sent, clock

    def tell(self, message: Any) -> None:
        assert isinstance(message, HealthCheck)
        self.sent.setdefault(self.child_id, []).append(self.clock[0])


def test_checks_are_sent_when_due_never_early_and_keep_their_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    import fieldwatch.actors.health as health_module

    clock = [1000.0]
    monkeypatch.setattr(health_module.time, "monotonic", lambda: clock[0])
    sent: dict[str, list[float]] = {}
    kids = {
        f"k{i}": Kid(f"k{i}", None, HealthCheckPolicy(interval_s=interval, timeout_s=100.0, failures=3))
        for i, interval in enumerate([0.03, 0.05, 0.13, 0.5, 1.0, 2.5] * 3)
    }
    for kid in kids.values():
        kid.ref = _Recorder(kid.child_id, sent, clock)  # type: ignore[assignment]
    checks: HealthChecks[Kid] = HealthChecks(
        find=kids.get, replace=lambda *a: None, crashed=lambda *a: None, tell_self=lambda m: None
    )
    firsts = {}
    for kid in kids.values():
        checks.schedule(kid)
    for due, kid, _gen in [e for entries in checks._wheel.values() for e in entries]:  # noqa: SLF001
        firsts[kid.child_id] = due
    step = 0.013  # sweeps at an irregular cadence, off the wheel's slots
    while clock[0] < 1010.0:
        clock[0] += step
        checks.sweep()
        for kid in kids.values():  # answer at once: every due check is sent
            kid.health.pending = None
    for child_id, times in sent.items():
        interval = kids[child_id].health_policy.interval_s
        expected = [firsts[child_id] + k * max(interval, 0.0) for k in range(len(times))]
        # each check at its due time (phase kept), at most one sweep step late, never early
        assert all(0.0 <= t - e <= step + 1e-9 for t, e in zip(times, expected, strict=True)), child_id
        assert len(times) >= int((1010.0 - firsts[child_id]) / interval) - 1, child_id
    assert set(sent) == set(kids)


def test_an_answer_that_arrives_while_the_sweep_runs_is_not_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer lands in the sink after the sweep judged the reports but before it reaches
    the check's deadline (its thread waited for the GIL meanwhile): judged, not a timeout."""
    import fieldwatch.actors.health as health_module

    clock = [500.0]
    late_answer: list[HealthReport] = []

    def monotonic() -> float:
        if late_answer:  # the sweep reads the clock after judging the reports: the answer comes in now
            checks.sink.tell(late_answer.pop())
        return clock[0]

    monkeypatch.setattr(health_module.time, "monotonic", monotonic)
    sent: dict[str, list[float]] = {}
    kid = Kid("kid", None, HealthCheckPolicy(interval_s=10.0, timeout_s=2.0, failures=1))
    kid.ref = _Recorder("kid", sent, clock)  # type: ignore[assignment]
    replaced: list[tuple[str, str]] = []
    checks: HealthChecks[Kid] = HealthChecks(
        find=lambda child_id: kid if child_id == "kid" else None,
        replace=lambda child, exc, msg: replaced.append((exc, msg)), crashed=lambda c: None,
        tell_self=lambda m: None,
    )  # fmt: skip
    checks.schedule(kid)
    clock[0] += 10.0
    checks.sweep()
    assert sent == {"kid": [510.0]} and kid.health.pending == 1
    late_answer.append(HealthReport("kid", 1, 1, Health(True)))
    clock[0] += 2.5  # past the deadline
    checks.sweep()
    assert replaced == []
    assert kid.health.pending is None and kid.health.failures == 0


def test_the_tick_wakes_the_supervisor_only_when_something_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Sweep while no check is due, no deadline passed and no report waits; one as soon as one is."""
    import fieldwatch.actors.health as health_module

    clock = [100.0]
    monkeypatch.setattr(health_module.time, "monotonic", lambda: clock[0])
    sent: dict[str, list[float]] = {}
    kid = Kid("kid", None, HealthCheckPolicy(interval_s=10.0, timeout_s=2.0, failures=1))
    kid.ref = _Recorder("kid", sent, clock)  # type: ignore[assignment]
    sweeps: list[Any] = []
    checks: HealthChecks[Kid] = HealthChecks(
        find=lambda child_id: kid if child_id == "kid" else None, replace=lambda *a: None,
        crashed=lambda c: None, tell_self=sweeps.append,
    )  # fmt: skip

    def tick() -> bool:
        before = len(sweeps)
        checks._request_sweep()  # noqa: SLF001 - the scheduler's tick
        if len(sweeps) > before:
            checks.sweep()  # the supervisor handles it
            return True
        return False

    assert tick()  # nothing known yet: the first tick sweeps
    checks.schedule(kid)  # first check due 5-10 s from now
    due = next(e[0] for entries in checks._wheel.values() for e in entries)  # noqa: SLF001
    ticks = []
    while clock[0] < due + 0.1:
        ticks.append((clock[0], tick()))
        clock[0] += 0.05
    woke = [t for t, swept in ticks if swept]
    assert woke and all(t >= due - health_module.SWEEP_S for t in woke), "woken before the check was due"
    assert len(sent["kid"]) == 1 and due <= sent["kid"][0] < due + 0.1  # sent when due
    assert kid.health.pending == 1
    assert not tick()  # the check's deadline is 2 s away, the next check 10 s: nothing to do now
    checks.sink.tell(HealthReport("kid", 1, 1, Health(True)))
    assert tick() and kid.health.pending is None  # a waiting report wakes it at once
    clock[0] += 0.05
    assert not tick()
