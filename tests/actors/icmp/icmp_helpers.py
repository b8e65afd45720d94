"""Test helpers for the ICMP tests (not fixtures: imported by the tests and conftest)."""

from __future__ import annotations

import threading
import time

import pytest

from fieldwatch.actors.icmp.prober import ProbeResult

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
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.results) >= n, timeout_s):
                pytest.fail(f"only {len(self.results)} of {n} probe results within {timeout_s} s")
            return list(self.results)

    def by_address(self) -> dict[str, ProbeResult]:
        """The results keyed by address (the last one wins)."""
        with self._cond:
            return {r.address: r for r in self.results}
