"""What readers get of an endpoint's status, and the freshness rule they apply.

The one writer is `fieldwatch.ledger.EndpointLedger`; this module holds only its read
shapes (copies handed to the API, metrics and the status page) and the pure freshness
rule (`fresh_state`), so a hung actor cannot hold an `up` that is false.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from fieldwatch import states

__all__ = ["EndpointStatus", "LightStatus", "StatusRow", "effective_state", "fresh_state"]


@dataclass(slots=True)
class EndpointStatus:
    """One endpoint as readers see it (copied out of the ledger on every read)."""

    endpoint_id: int
    site: str
    name: str
    kind: str
    #: an actor runs or is meant to run (site and endpoint enabled); the status page shows it
    enabled: bool = True
    state: str = states.DISABLED
    since: float = field(default_factory=time.time)
    reason: str | None = None
    down_since: float | None = None
    last_data_at: float | None = None
    generation: int = 0
    restarts: int = 0
    reconnects: int = 0
    connected_once: bool = False
    #: readers demote `up` to `stale` when last_data_at is older than this
    fresh_within_s: float | None = None
    #: (family, label) -> value: a kind's own counters, e.g. (messages family, "stored")
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    #: active alerts: (condition, subject)
    alerts: set[tuple[str, str]] = field(default_factory=set)
    #: latest numeric value per (reading name, device or ""), for fieldwatch_reading_value
    values: dict[tuple[str, str], float] = field(default_factory=dict)
    #: the kind's own live figures (an object of the kind's folder); the ledger only
    #: folds into it (`observe_many`) and copies it for readers with its `copy()`
    extra: Any = None

    def copy(self) -> EndpointStatus:
        """A deep-enough copy for readers."""
        return replace(
            self,
            counters=dict(self.counters),
            alerts=set(self.alerts),
            values=dict(self.values),
            extra=None if self.extra is None else self.extra.copy(),
        )


class StatusRow(NamedTuple):
    """The fields of one endpoint a listing shows, copied in one ledger lock (no counters)."""

    endpoint_id: int
    state: str
    since: float
    reason: str | None
    down_since: float | None
    last_data_at: float | None
    generation: int
    restarts: int
    reconnects: int
    fresh_within_s: float | None


def effective_state(status: EndpointStatus | StatusRow, now: float | None = None) -> tuple[str, str | None]:
    """The state a reader may report: `up` only while data is fresh."""
    return fresh_state(status.state, status.reason, status.last_data_at, status.fresh_within_s, now)


def fresh_state(
    state: str, reason: str | None, last_data_at: float | None, fresh_within_s: float | None, now: float | None = None
) -> tuple[str, str | None]:
    """The freshness rule on plain fields (`effective_state` of a light copy, for the status page)."""
    if state == states.UP and fresh_within_s is not None:
        now = time.time() if now is None else now
        age = None if last_data_at is None else now - last_data_at
        if age is None or age > fresh_within_s:
            shown = "never" if age is None else f"{age:.1f}s ago"
            return states.STALE, f"no data within {fresh_within_s:g}s (last data {shown})"
    return state, reason


class LightStatus(NamedTuple):
    """What the status page needs of an endpoint (`EndpointLedger.light_snapshot`); apply `fresh_state`."""

    site: str
    name: str
    kind: str
    enabled: bool
    state: str
    since: float
    reason: str | None
    down_since: float | None
    last_data_at: float | None
    fresh_within_s: float | None
    #: a copy of the kind's live figures (`EndpointStatus.extra`)
    extra: Any = None
