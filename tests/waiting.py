"""The one way tests wait for something: poll a condition against a deadline.

Tests never sleep to synchronise (../shared/STYLE.md): they call `wait_for` with what
they expect and a bound. It is the only polling helper in tests/ — recorders that
hold a `threading.Condition` pass it as `cond` and are woken instead of polled.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

_T = TypeVar("_T")


def wait_for(
    predicate: Callable[[], _T],
    timeout: float = 5.0,
    interval: float = 0.01,
    *,
    what: str = "condition",
    cond: threading.Condition | None = None,
) -> _T:
    """Call `predicate` until it returns something truthy and return that value.

    After `timeout` seconds it raises AssertionError naming `what` (so a missed
    condition fails the test, and `pytest.raises(AssertionError)` tests that
    something does NOT happen). With `cond`, `predicate` runs holding `cond` and the
    wait sleeps on it until notified (at most `interval` * 10 between checks).
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    with cond if cond is not None else contextlib.nullcontext():
        while not (value := predicate()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
            if cond is not None:
                cond.wait(min(remaining, interval * 10))
            else:
                time.sleep(min(remaining, interval))
        return value
