"""Helpers for cluster tests: ownership samples and the check that no site is owned twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fieldwatch.cluster import LeaseManager


@dataclass(frozen=True, slots=True)
class Sample:
    """What instance `name` claimed at monotonic time `t` (CLOCK_MONOTONIC is machine-wide)."""

    t: float
    name: str
    owned: Mapping[str, int]


def claims(samples: Iterable[Sample]) -> dict[tuple[str, int], tuple[str, float, float]]:
    """(site, epoch) -> (instance, first claim, last claim); fails if two instances claim one epoch."""
    out: dict[tuple[str, int], tuple[str, float, float]] = {}
    for s in samples:
        for site, epoch in s.owned.items():
            key = (site, epoch)
            if key in out:
                name, first, last = out[key]
                assert name == s.name, f"{site} epoch {epoch} claimed by {name} and {s.name}"
                out[key] = (name, min(first, s.t), max(last, s.t))
            else:
                out[key] = (s.name, s.t, s.t)
    return out


def assert_never_owned_twice(samples: Iterable[Sample]) -> int:
    """Every claim of a site's epoch ends before the first claim of its next epoch.

    Returns the number of (site, epoch) ownerships seen, so callers can check the
    sampler saw something.
    """
    table = claims(samples)
    by_site: dict[str, list[tuple[int, str, float, float]]] = {}
    for (site, epoch), (name, first, last) in table.items():
        by_site.setdefault(site, []).append((epoch, name, first, last))
    for site, rows in by_site.items():
        rows.sort()
        for (e1, n1, _, last1), (e2, n2, first2, _) in zip(rows, rows[1:], strict=False):
            assert last1 < first2, (f"site {site} owned twice: {n1} (epoch {e1}) until {last1:.3f}, "
                                    f"{n2} (epoch {e2}) from {first2:.3f}")
    return len(table)


class Sampler:
    """A thread recording every manager's `owned()` every `interval` seconds."""

    def __init__(self, managers: Callable[[], Iterable[LeaseManager]], interval: float = 0.02) -> None:
        self.managers = managers
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ownership-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for manager in list(self.managers()):
                t = time.monotonic()
                self.samples.append(Sample(t, manager.name, manager.owned()))
            self._stop.wait(self.interval)
