"""Lookups over a run: incarnations, site windows, samples.

A sample is *valid* when it talked to an incarnation that was ready before it
was sent and not yet killed or stopped when it was answered. A time t of an
incarnation is *durable* when a later valid sample of that incarnation saw an
empty storage queue: what was queued before a SIGKILL and never committed is
not expected in the database.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from .env import Incarnation
from .runner import SoakRun
from .sampler import Sample

__all__ = ["Timeline", "end_of"]


def end_of(inc: Incarnation) -> float:
    """When the incarnation stopped serving (killed, stopped or exited), +inf while it runs."""
    return min(t for t in (inc.killed_at, inc.stopped_at, inc.exited_at, float("inf")) if t is not None)


class Timeline:
    """Lookups over incarnations, site windows and samples."""

    def __init__(self, run: SoakRun) -> None:
        self.run = run
        self.incs: list[Incarnation] = run.env.incarnations
        self.samples: list[Sample] = sorted(run.sampler.samples, key=lambda s: s.t0)
        self.t0s = [s.t0 for s in self.samples]
        self.valid = [s for s in self.samples if self.is_valid(s)]
        self.valid_t0s = [s.t0 for s in self.valid]
        self._drained: dict[int, list[float]] = defaultdict(list)
        for s in self.valid:
            if s.queue_depth == 0:
                self._drained[s.incarnation].append(s.t0)

    def is_valid(self, s: Sample) -> bool:
        """The sample talked to a ready incarnation that was neither killed nor stopped meanwhile."""
        if not s.ok or not 0 <= s.incarnation < len(self.incs):
            return False
        inc = self.incs[s.incarnation]
        return inc.ready_at is not None and inc.ready_at <= s.t0 and s.t1 < end_of(inc)

    def valid_between(self, start: float, end: float) -> list[Sample]:
        """Valid samples sent in [start, end]."""
        lo, hi = bisect.bisect_left(self.valid_t0s, start), bisect.bisect_right(self.valid_t0s, end)
        return self.valid[lo:hi]

    def durable(self, incarnation: int, t: float) -> bool:
        """Whether what incarnation queued by time t was seen committed."""
        drained = self._drained.get(incarnation, [])
        i = bisect.bisect_right(drained, t + 0.05)
        return i < len(drained)

    def site_disabled(self, site: str, t0: float, t1: float) -> bool:
        """Whether the site was (being) disabled at any moment of [t0, t1]."""
        return any(w.site == site and w.disable_status == 202 and w.disabled_at <= t1
                   and (w.enabled_at is None or w.enabled_at >= t0) for w in self.run.log.site_windows)

    def enabled_since(self, site: str, t: float) -> float:
        """When the site was last (re-)enabled before t (0 if never toggled)."""
        times = [w.enabled_at for w in self.run.log.site_windows
                 if w.site == site and w.disable_status == 202 and w.enabled_at is not None and w.enabled_at <= t]
        return max(times, default=0.0)

    def live_incarnation(self, start: float, end: float) -> Incarnation | None:
        """The incarnation that was ready at `start` and lived past `end`, if one did."""
        for inc in self.incs:
            if inc.ready_at is not None and inc.ready_at <= start and end_of(inc) > end:
                return inc
        return None
