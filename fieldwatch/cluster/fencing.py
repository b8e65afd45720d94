"""The persistence writer's lease check (SPEC section 10, fencing): `EpochFence`.

The cluster runner sets one on the StorageGateway (`gateway.fence`); the writer calls
`refused` inside every batch's transaction with the newest lease epoch of each site in
the batch (`fieldwatch.storage.batch.split_fenced`), leaves the writes of refused sites
out, and reports them with `fenced` after the commit. The check is one statement
(`fenced_sites`: FOR KEY SHARE on the lease rows, so a takeover waits for the batch's
commit and no write of an old epoch can commit after it); the same statement bounds how
long the batch's transaction may sit idle (a writer frozen inside it must not keep a
takeover waiting: the server ends its session after `idle_timeout_s`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from fieldwatch.cluster.schema import fenced_sites
from fieldwatch.cluster.view import FencedWrites

__all__ = ["EpochFence"]

logger = logging.getLogger("fieldwatch.cluster")


class EpochFence:
    """Refuses writes for sites whose lease this instance no longer holds at their epoch.

    Counts every refused write in `counter` (fieldwatch_storage_fenced_writes_total) and
    logs once per site per fencing episode (an episode ends when a write of the site passes).
    `enabled` False turns the check off (tests demonstrating what fencing prevents).
    """

    def __init__(self, counter: FencedWrites, idle_timeout_s: float | None = None) -> None:
        self.counter = counter
        #: the server ends a batch's session idle in its transaction this long (a frozen writer)
        self.idle_timeout_ms = None if idle_timeout_s is None else max(1, int(idle_timeout_s * 1000))
        self.enabled = True
        self._lock = threading.Lock()
        self._episodes: dict[str, int] = {}

    def refused(self, cursor: Any, epochs: Mapping[str, int]) -> set[str]:
        """The sites of `epochs` whose writes must be left out (see the module doc)."""
        if not self.enabled:
            return set()
        return fenced_sites(cursor, epochs, self.idle_timeout_ms)

    def fenced(self, counts: Mapping[str, int], epochs: Mapping[str, int | None]) -> None:
        """Count and log the writes left out per site; the sites in `epochs` passed."""
        total = sum(counts.values())
        if total:
            self.counter.add(total)
        with self._lock:
            for site in epochs:
                if site not in counts:
                    self._episodes.pop(site, None)
            new = [site for site in counts if site not in self._episodes]
            for site, n in counts.items():
                self._episodes[site] = self._episodes.get(site, 0) + n
        for site in sorted(new):
            logger.warning(
                "cluster: refusing writes for site %s: this instance no longer holds its lease at the "
                "epoch they were made under (%d so far; counted in fieldwatch_storage_fenced_writes_total, "
                "logged once per episode)",
                site,
                counts[site],
            )
