"""Test helpers for the ICMP tests (not fixtures: imported by the tests and conftest)."""

from __future__ import annotations

import threading
import time

from fieldwatch.actors.icmp.prober import ProbeResult
from tests.waiting import wait_for

__all__ = ["ResultSink"]


class ResultSink:
    """Collects ProbeResults from the prober's threads; tests wait on it with deadlines."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.results: list[ProbeResult] = []
        self.arrived: list[float] = []  # time.monotonic() of each callback

    def __call__(self, result: ProbeResult) -> None:
        with self._cond:
            self.results.append(result)
            self.arrived.append(time.monotonic())
            self._cond.notify_all()

    def wait(self, n: int, timeout_s: float) -> list[ProbeResult]:
        """Wait until `n` results arrived; fail the test at the deadline."""
        wait_for(lambda: len(self.results) >= n, timeout_s, what=f"{n} probe results", cond=self._cond)
        with self._cond:
            return list(self.results)

    def by_address(self) -> dict[str, ProbeResult]:
        """The results keyed by address (the last one wins)."""
        with self._cond:
            return {r.address: r for r in self.results}
