"""The shared timer thread: order, cancellation, drift-free periods, one thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pykka
import pytest

from fieldwatch.actors.scheduler import Scheduler


@pytest.fixture
def sched() -> Iterator[Scheduler]:
    s = Scheduler()
    s.start()
    yield s
    s.stop()


def test_call_later_runs_in_due_order(sched: Scheduler) -> None:
    seen: list[int] = []
    done = threading.Event()
    for delay, tag in [(0.15, 3), (0.05, 1), (0.10, 2)]:
        sched.call_later(delay, lambda tag=tag: seen.append(tag))
    sched.call_later(0.2, done.set)
    assert done.wait(5)
    assert seen == [1, 2, 3]


def test_cancelled_timer_does_not_run(sched: Scheduler) -> None:
    ran = threading.Event()
    done = threading.Event()
    handle = sched.call_later(0.05, ran.set)
    handle.cancel()
    sched.call_later(0.1, done.set)
    assert done.wait(5)
    assert not ran.is_set()


def test_every_keeps_its_cadence(sched: Scheduler) -> None:
    stamps: list[float] = []
    enough = threading.Event()

    def tick() -> None:
        stamps.append(time.monotonic())
        time.sleep(0.03)  # a slow callback must not push later ticks back (no drift)
        if len(stamps) >= 6:
            enough.set()

    start = time.monotonic()
    handle = sched.every(0.1, tick)
    assert enough.wait(5)
    handle.cancel()
    # Tick n is due at start + n*0.1: the phase is kept even though each tick took 30 ms.
    for n, stamp in enumerate(stamps[:6], start=1):
        assert stamp - (start + n * 0.1) < 0.09, f"tick {n} drifted"


def test_many_timers_share_one_thread(sched: Scheduler) -> None:
    count = 500
    fired = threading.Semaphore(0)
    before = threading.active_count()
    for i in range(count):
        sched.call_later(0.01 + i * 0.0001, fired.release)
    for _ in range(count):
        assert fired.acquire(timeout=5)
    assert threading.active_count() == before
    names = [t.name for t in threading.enumerate() if t.name.startswith("fieldwatch-scheduler")]
    assert len(names) == 1


def test_tell_later_to_a_dead_actor_is_harmless(sched: Scheduler) -> None:
    class Sink(pykka.ThreadingActor):
        pass

    ref = Sink.start()
    ref.stop()
    done = threading.Event()
    sched.tell_later(0.01, ref, "hello")
    sched.call_later(0.05, done.set)
    assert done.wait(5)


def test_a_failing_callback_does_not_kill_the_thread(sched: Scheduler) -> None:
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    sched.call_later(0.01, boom)
    sched.call_later(0.05, done.set)
    assert done.wait(5)
