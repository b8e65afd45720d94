"""The health checks of one supervisor's children: one sweep timer, a wheel of due checks, FIFOs of deadlines.

No timer per child, nor per supervisor: a site with 10,000 endpoints costs a share of one
periodic tick for all supervisors, and the tick wakes a supervisor only when something is due. Due checks wait in a wheel of sweep-sized slots and
deadlines in one FIFO per timeout value (no heap: at 10,000 endpoints the heap operations were
most of the sweep, itself the largest Python frame of the daemon, issue 17). Health checks are
tells with a deadline, so a hung child never blocks its supervisor: the supervisor abandons it
and starts a new generation, whose predecessor is ignored. A pooled child whose check waits for
a pool worker, or which works through its own messages (no handler running as long as the
timeout), is not hung: its deadline is extended. Answers go to a queue drained at each sweep,
not to the supervisor's mailbox. An idle pooled child that allows it (`inline_health_check`) is
checked on the supervisor's thread while its turn is held, without a message.

`HealthChecks` owns the schedule and each child's `ChildHealth`; it runs inside the supervisor's
actor (the `Sweep` message) and calls back into it through the callables it was given.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import pykka

from fieldwatch.actors.messages import Health, HealthCheck, HealthReport
from fieldwatch.actors.pool import call_if_idle, progressing
from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.policy import HealthCheck as HealthCheckPolicy

__all__ = ["QUEUED_CHECK_MAX_S", "SWEEP_S", "ChildHealth", "Checked", "HealthChecks", "ReportSink", "Sweep"]

#: How often a supervisor looks at its health-check schedule (the granularity of
#: health-check intervals and timeouts).
SWEEP_S = 0.05

#: A pooled child whose health check is still queued (it waits for a worker, or a worker is
#: inside one of its handlers for less than the timeout: it works through its own backlog)
#: is not hung: its deadline is extended, up to this long after the check was sent (e.g.
#: 20,000 endpoints starting at once). Inside one handler for the timeout or more: hung.
QUEUED_CHECK_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class Sweep:
    """Self-message of a supervisor: send due health checks, act on passed deadlines."""


class ReportSink:
    """Where children answer health checks: a queue the supervisor drains at each sweep.

    At 10,000 endpoints a thousand reports arrive a second; as mailbox messages each one
    woke the supervisor's thread and went through pykka's dispatch (issue 17). A report
    is judged at the next sweep (at most `SWEEP_S` later), before any deadline is.
    """

    __slots__ = ("reports",)

    def __init__(self) -> None:
        self.reports: deque[HealthReport] = deque()

    def tell(self, message: HealthReport) -> None:
        self.reports.append(message)  # thread-safe; never raises, like a tell to a live actor


class ChildHealth:
    """One child's health-check state: failures in a row, the check awaiting an answer."""

    __slots__ = ("failures", "seq", "pending", "sent_at")

    def __init__(self) -> None:
        self.failures = 0
        self.seq = 0  # the last check's number
        self.pending: int | None = None  # the check awaiting an answer
        self.sent_at = 0.0


class Checked(Protocol):
    """What the health checks read of a supervisor's child."""

    @property
    def child_id(self) -> str: ...

    @property
    def generation(self) -> int: ...

    @property
    def ref(self) -> pykka.ActorRef[Any] | None: ...

    @property
    def health(self) -> ChildHealth: ...

    @property
    def health_policy(self) -> HealthCheckPolicy: ...


C = TypeVar("C", bound=Checked)


class _Ticker:
    """One `SWEEP_S` tick per scheduler for the health checks of every supervisor on it.

    A timer per supervisor woke the scheduler's thread 20 times a second for each one, most
    of them with a few children and nothing due (each wake-up is a GIL hand-off: issue 17).
    """

    _lock = threading.Lock()
    _of: weakref.WeakKeyDictionary[Scheduler, _Ticker] = weakref.WeakKeyDictionary()

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = weakref.ref(scheduler)  # not kept alive by its entry in `_of`
        self._checks: list[HealthChecks[Any]] = []  # copied on change: the tick reads it unlocked
        self._timer: TimerHandle | None = None

    @classmethod
    def of(cls, scheduler: Scheduler) -> _Ticker:
        with cls._lock:
            ticker = cls._of.get(scheduler)
            if ticker is None:
                ticker = cls._of[scheduler] = cls(scheduler)
            return ticker

    def add(self, checks: HealthChecks[Any]) -> None:
        with self._lock:
            if checks not in self._checks:
                self._checks = [*self._checks, checks]
            scheduler = self._scheduler()
            if scheduler is not None and (self._timer is None or self._timer.cancelled):
                self._timer = scheduler.every(SWEEP_S, self._tick, first_delay_s=SWEEP_S)

    def remove(self, checks: HealthChecks[Any]) -> None:
        with self._lock:
            self._checks = [c for c in self._checks if c is not checks]
            if not self._checks and self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _tick(self) -> None:
        for checks in self._checks:
            checks._request_sweep()  # noqa: SLF001 - the tick is the checks' own, shared


class HealthChecks(Generic[C]):
    """The health checks of one supervisor's children, run in the supervisor's actor.

    `find(child_id)`: the current child of that id, if any. `replace(child, exc_type, message)`:
    a child failed its checks ("HealthCheckFailed") or did not answer ("HealthCheckTimeout").
    `crashed(child)`: a child found dead when checked. `tell_self(message)`: to the supervisor's
    own mailbox (from the scheduler's thread).
    """

    def __init__(
        self,
        *,
        find: Callable[[str], C | None],
        replace: Callable[[C, str, str], None],
        crashed: Callable[[C], None],
        tell_self: Callable[[Any], None],
    ) -> None:
        self._find = find
        self._replace = replace
        self._crashed = crashed
        self._tell_self = tell_self
        #: slot (int(due / SWEEP_S)) -> [(due, child, generation)], in no particular order. The
        #: child itself, not its id: a stopped or removed child has no ref, a restarted one a newer
        #: generation, so no lookup by id is needed (at 10,000 children each lookup of a cold
        #: entry cost more than the rest of the check, issue 17).
        self._wheel: dict[int, list[tuple[float, C, int]]] = {}
        self._next_slot: int | None = None  # the first slot not swept whole
        #: timeout_s -> [(deadline, child, generation, seq)]: appended at `now`, so in order
        self._deadlines: dict[float, deque[tuple[float, C, int, int]]] = {}
        self._ticker: _Ticker | None = None
        self._sweep_pending = False
        #: no check is due and no deadline passes before this (monotonic), so the scheduler's
        #: tick does not wake the supervisor for nothing (most supervisors have a few children
        #: checked every few seconds); written by the supervisor's thread, read by the tick
        self._wake_at = 0.0
        self.sink = ReportSink()

    def start(self, scheduler: Scheduler) -> None:
        self._ticker = _Ticker.of(scheduler)
        self._ticker.add(self)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.remove(self)

    # -- a child's schedule ------------------------------------------------------

    def reset(self, child: C) -> None:
        """A new generation is starting: no failures, no check awaiting an answer."""
        child.health.failures = 0
        child.health.pending = None

    def schedule(self, child: C) -> None:
        """A new generation started: its first check, spread over the interval (thousands of
        children started together must not all be checked in the same instant)."""
        first = time.monotonic() + child.health_policy.interval_s * random.uniform(0.5, 1.0)
        self._at(first, child, child.generation)

    def _at(self, due: float, child: C, generation: int) -> None:
        slot = int(due / SWEEP_S)
        entries = self._wheel.get(slot)
        if entries is None:
            self._wheel[slot] = [(due, child, generation)]
        else:
            entries.append((due, child, generation))
        if self._next_slot is not None and slot < self._next_slot:
            self._next_slot = slot  # (only if the clock stepped back: never in practice)
        if due < self._wake_at:
            self._wake_at = due

    def cancel(self, child: C) -> None:
        """The child stops: its check's answer or deadline is ignored (its wheel and deadline
        entries are skipped later, by generation and ref, and `pending` cleared here)."""
        child.health.pending = None

    # -- the sweep ---------------------------------------------------------------

    def _request_sweep(self) -> None:
        """Scheduler thread: at most one Sweep in the mailbox at a time, and only when a report
        waits or a check or deadline is due (a stale read of `_wake_at` delays by one tick)."""
        if not self._sweep_pending and (self.sink.reports or time.monotonic() >= self._wake_at):
            self._sweep_pending = True
            self._tell_self(Sweep())

    def sweep(self) -> None:
        """Judge the reports, act on the deadlines that passed, send the checks that are due."""
        self._sweep_pending = False
        self._judge_reports()
        now = time.monotonic()
        for queue in self._deadlines.values():
            while queue and queue[0][0] <= now:
                _, child, generation, seq = queue.popleft()
                if child.generation == generation and child.health.pending == seq:
                    self._on_timeout(child, generation, seq)
        for due, child, generation in self._due_now(now):
            if child.ref is None or child.generation != generation:
                continue  # stopped, removed or replaced: its schedule ends here
            interval = child.health_policy.interval_s
            nxt = due + interval if due + interval > now else now + interval  # keep the phase
            self._at(nxt, child, generation)
            self._send(child, now)
        self._next_wake()

    def _next_wake(self) -> None:
        """The earliest a check is due (the start of the first wheel slot) or a deadline passes."""
        first_slot = min(self._wheel, default=None)
        times = [queue[0][0] for queue in self._deadlines.values() if queue]
        if first_slot is not None:
            times.append(first_slot * SWEEP_S)
        self._wake_at = min(times, default=float("inf"))

    def _judge_reports(self) -> None:
        reports = self.sink.reports
        while reports:
            self.on_report(reports.popleft())

    def _due_now(self, now: float) -> list[tuple[float, C, int]]:
        """Take every entry due by `now` off the wheel: the slots before now's whole, now's own
        only what is due (the rest stays in it)."""
        wheel = self._wheel
        current = int(now / SWEEP_S)
        start = self._next_slot
        if start is None:
            start = min(wheel, default=current)
        out: list[tuple[float, C, int]] = []
        for slot in range(start, current):
            entries = wheel.pop(slot, None)
            if entries:
                out += entries
        entries = wheel.get(current)
        if entries:
            later = [e for e in entries if e[0] > now]
            out += [e for e in entries if e[0] <= now]
            if later:
                wheel[current] = later
            else:
                del wheel[current]
        self._next_slot = current
        return out

    def _send(self, child: C, now: float) -> None:
        health = child.health
        if health.pending is not None:
            return  # the previous check is still within its timeout
        health.seq += 1
        health.pending = health.seq
        health.sent_at = now
        ref = child.ref
        assert ref is not None
        answered, answer = call_if_idle(ref, "health_answer", "inline_health_check")
        if answered:  # an idle pooled child that allows it: checked here (see SupervisedActor)
            self._judge(child, answer)
            return
        try:
            ref.tell(HealthCheck(health.seq, self.sink))
        except pykka.ActorDeadError:
            # Died without telling us (e.g. on_start failed before reporting): a crash.
            self._crashed(child)
            return
        self._deadline(now, child.health_policy.timeout_s, child, child.generation, health.seq)

    def _deadline(self, now: float, timeout: float, child: C, generation: int, seq: int) -> None:
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = deque()
        queue.append((now + timeout, child, generation, seq))
        if now + timeout < self._wake_at:
            self._wake_at = now + timeout

    def on_report(self, msg: HealthReport) -> None:
        child = self._find(msg.child_id)
        if child is None or child.generation != msg.generation or child.health.pending != msg.seq:
            return
        self._judge(child, msg.health)

    def _judge(self, child: C, answer: Health) -> None:
        """The answer to the child's pending check."""
        health = child.health
        health.pending = None
        if answer.ok:
            health.failures = 0
            return
        health.failures += 1
        if health.failures >= child.health_policy.failures:
            self._replace(child, "HealthCheckFailed", answer.detail or "unhealthy")

    def _on_timeout(self, child: C, generation: int, seq: int) -> None:
        """A check's deadline passed while it was pending (stopping a child clears `pending`)."""
        # An answer that came in since the reports were judged (e.g. while this thread waited
        # for the GIL) is in the sink, not late: judge it before calling the check unanswered.
        self._judge_reports()
        if child.generation != generation or child.health.pending != seq:
            return
        timeout = child.health_policy.timeout_s
        now = time.monotonic()
        if (
            child.ref is not None
            and now - child.health.sent_at < QUEUED_CHECK_MAX_S
            and progressing(child.ref, timeout)
        ):
            # Queued behind other work or working through its own, not hung: judge it again later.
            self._deadline(now, timeout, child, generation, seq)
            return
        self._replace(child, "HealthCheckTimeout", f"no answer to a health check within {timeout:g}s")
