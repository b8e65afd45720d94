"""Where each site should run: rendezvous (highest random weight) hashing over live instances.

Pure functions, no database. Rendezvous hashing moves only what must move: when an
instance leaves, only its sites get new owners; when one joins, it takes about 1/n
of the sites from the others and nothing else changes. Weights hash the instance
*name* (not its boot id) so a restarted instance gets its own sites back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LeaseRow", "Plan", "plan_scan", "preferred_owner"]


def _weight(site: str, instance: str) -> int:
    digest = hashlib.blake2b(f"{site}\0{instance}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred_owner(site: str, instances: Iterable[str]) -> str | None:
    """The instance `site` should run on among `instances`, or None when there is none."""
    best: tuple[int, str] | None = None
    for name in instances:
        candidate = (_weight(site, name), name)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best is not None else None


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A site's lease as one scan read it: `held` is false when free or expired (database clock);
    `orphaned` when it has been free or expired for longer than a whole lease."""

    site: str
    owner: str | None
    epoch: int
    held: bool
    orphaned: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """What one instance does after a scan: leases to take (site -> epoch read) and to hand over."""

    take: Mapping[str, int]
    release: tuple[str, ...]


def plan_scan(me: str, rows: Iterable[LeaseRow], live: Iterable[str], max_moves: int) -> Plan:
    """Decide which free leases `me` takes and which of its own it hands over.

    A free or expired lease is taken when `me` is its preferred owner among the live
    instances (or when it has been orphaned for a whole lease, as a safety net), with
    no cap: nobody runs such a site, so waiting only lengthens an outage. A lease `me`
    holds whose preferred owner is another live instance (one that joined) is handed
    over, at most `max_moves` per scan, so a join is a trickle of moves, not a storm.
    """
    live_names = sorted(set(live) | {me})
    take: dict[str, int] = {}
    release: list[str] = []
    for row in sorted(rows, key=lambda r: r.site):
        preferred = preferred_owner(row.site, live_names)
        if not row.held:
            if preferred == me or row.orphaned:
                take[row.site] = row.epoch
        elif row.owner == me and preferred != me and len(release) < max_moves:
            release.append(row.site)
    return Plan(take=take, release=tuple(release))
