"""One timer thread for the whole daemon: timed tells without a thread per timer.

Probe intervals, backoff delays, health checks and offline timers all go through
one heap served by one thread. Callbacks run on that thread and must be quick:
in practice they `tell` an actor, which does the work on its own thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

__all__ = ["Scheduler", "TimerHandle"]

logger = logging.getLogger(__name__)


class TimerHandle:
    """A scheduled callback; `cancel()` makes sure it will not run (again)."""

    __slots__ = ("_cancelled", "due")

    def __init__(self, due: float) -> None:
        self.due = due
        self._cancelled = False

    def cancel(self) -> None:
        """Stop this timer; harmless if it already ran or was cancelled."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """Whether cancel() was called."""
        return self._cancelled


class Scheduler:
    """A heap of timers served by a single thread (monotonic clock).

    `every()` keeps its cadence: the n-th tick is due at first + n * interval,
    whatever the lateness of earlier ticks, so schedules do not drift.
    """

    def __init__(self, name: str = "fieldwatch-scheduler") -> None:
        self._name = name
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the timer thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the timer thread; pending timers are dropped."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
            self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    @property
    def pending(self) -> int:
        """Number of timers in the heap (cancelled ones included until they come due)."""
        with self._cond:
            return len(self._heap)

    # -- scheduling ------------------------------------------------------------

    def call_at(self, due: float, fn: Callable[[], None]) -> TimerHandle:
        """Run `fn` on the timer thread at monotonic time `due`."""
        handle = TimerHandle(due)
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), handle, fn))
            if self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> TimerHandle:
        """Run `fn` on the timer thread after `delay_s` seconds."""
        return self.call_at(time.monotonic() + max(0.0, delay_s), fn)

    def tell_later(self, delay_s: float, ref: pykka.ActorRef[Any], message: Any) -> TimerHandle:
        """Tell `message` to the actor `ref` after `delay_s`; a dead actor is ignored."""

        def _tell() -> None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

        return self.call_later(delay_s, _tell)

    def every(
        self,
        interval_s: float,
        fn: Callable[[], None],
        *,
        first_delay_s: float | None = None,
    ) -> TimerHandle:
        """Run `fn` every `interval_s` without drift; cancel the returned handle to stop."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        start = time.monotonic() + (interval_s if first_delay_s is None else max(0.0, first_delay_s))
        handle = TimerHandle(start)
        ticks = itertools.count(1)

        def _tick() -> None:
            if handle.cancelled:
                return
            try:
                fn()
            finally:
                if not handle.cancelled:
                    due = start + next(ticks) * interval_s
                    now = time.monotonic()
                    if due < now:  # we fell behind by whole intervals: skip, keep phase
                        missed = int((now - due) // interval_s) + 1
                        for _ in range(missed):
                            due = start + next(ticks) * interval_s
                    handle.due = due
                    self._push(due, handle, _tick)

        self._push(start, handle, _tick)
        return handle

    def _push(self, due: float, handle: TimerHandle, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._heap, (due, next(self._seq), handle, fn))
            if self._heap[0][2] is handle:
                self._cond.notify()

    # -- the thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _, _, handle, fn = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            try:
                fn()
            except Exception:  # supervision boundary: a bad callback must not kill all timers
                logger.exception("timer callback failed")
