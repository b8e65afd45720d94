"""The live status board: a lock-protected read model of every endpoint.

Connection actors write their state here as it changes (and send the same
change to the persistence actors); the API and the Prometheus collector read
snapshots without asking any actor. Readers apply the freshness rule
themselves (`effective_state`), so a hung actor cannot hold an `up` that is false.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from fieldwatch import states
from fieldwatch.actors.icmp.stats import fold_probe

__all__ = ["EndpointStatus", "LightStatus", "StatusBoard", "StatusRow", "effective_state", "fresh_state"]


@dataclass(slots=True)
class EndpointStatus:
    """One endpoint as readers see it (copied out of the board on every read)."""

    endpoint_id: int
    site: str
    name: str
    kind: str
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
    #: (family, label) -> value, e.g. ("messages", "stored"): a kind's result counters
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    #: the kind's own live statistics (its metric families and page facts read them), or None
    extra: Any = None
    #: active alerts: (condition, subject)
    alerts: set[tuple[str, str]] = field(default_factory=set)
    #: latest numeric value per (reading name, device or ""), for fieldwatch_reading_value
    values: dict[tuple[str, str], float] = field(default_factory=dict)

    def copy(self) -> EndpointStatus:
        """A deep-enough copy for readers."""
        return replace(
            self,
            counters=dict(self.counters),
            extra=None if self.extra is None else self.extra.copy(),
            alerts=set(self.alerts),
            values=dict(self.values),
        )


class StatusRow(NamedTuple):
    """The fields of one endpoint a listing shows, copied in one board lock (no counters)."""

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
    """What the status page needs of an endpoint (`StatusBoard.light_snapshot`); apply `fresh_state`."""

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
    extra: Any


#: Default cap on fieldwatch_reading_value series (SPEC §3 http.max_reading_series).
MAX_READING_SERIES = 10_000
_DROPPED_REMEMBERED = 100_000


def _observe(item: EndpointStatus, rtts: Sequence[float], loss: float) -> None:
    """Fold one probe's round-trip times (seconds) and loss ratio into `item.extra` (under the board's lock)."""
    item.extra = fold_probe(item.extra, (rtts, loss))


class StatusBoard:
    """Thread-safe map endpoint_id -> EndpointStatus, generation-aware.

    It also keeps the latest numeric reading values, at most `max_reading_series` of
    them over all endpoints; a new series past the cap is left out and counted once
    in `reading_series_dropped` (once per distinct series while fewer than 100,000 are
    remembered, then once per reading).
    """

    def __init__(self, max_reading_series: int = MAX_READING_SERIES) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, EndpointStatus] = {}
        #: each item's listing fields, refreshed by every write that changes one (under _lock),
        #: so a listing of 10,000 endpoints reads 10,000 ready rows instead of building them
        self._rows: dict[int, StatusRow] = {}
        self._max_values = max_reading_series
        self._n_values = 0
        self._dropped: set[tuple[int, str, str]] = set()
        self._dropped_total = 0

    def _refresh(self, s: EndpointStatus) -> None:
        """Rebuild the listing row of `s` (under _lock; the namedtuple's own __new__ is slow)."""
        self._rows[s.endpoint_id] = tuple.__new__(
            StatusRow,
            (s.endpoint_id, s.state, s.since, s.reason, s.down_since, s.last_data_at, s.generation, s.restarts,
             s.reconnects, s.fresh_within_s),
        )

    # -- registration ------------------------------------------------------------

    def register(self, status: EndpointStatus) -> None:
        """Add an endpoint, or refresh its identity/config while keeping counters."""
        with self._lock:
            old = self._items.get(status.endpoint_id)
            if old is not None:
                status.counters = old.counters
                status.extra = old.extra
                status.reconnects = max(status.reconnects, old.reconnects)
                status.restarts = max(status.restarts, old.restarts)
                status.generation = max(status.generation, old.generation)
                status.connected_once = old.connected_once
                status.alerts = old.alerts
                status.values = old.values
            else:
                self._n_values += len(status.values)
            self._items[status.endpoint_id] = status
            self._refresh(status)

    def remove(self, endpoint_id: int) -> None:
        """Forget an endpoint (its metric series disappear)."""
        with self._lock:
            self._rows.pop(endpoint_id, None)
            item = self._items.pop(endpoint_id, None)
            if item is not None:
                self._n_values -= len(item.values)

    def begin_generation(self, endpoint_id: int, generation: int, restarts: int) -> None:
        """A new actor instance started: older generations can no longer write here."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is not None and generation >= item.generation:
                item.generation = generation
                item.restarts = max(item.restarts, restarts)
                self._refresh(item)

    def current_generation(self, endpoint_id: int) -> int | None:
        """The newest generation started for the endpoint (None once it is removed)."""
        with self._lock:
            item = self._items.get(endpoint_id)
            return None if item is None else item.generation

    # -- writes from actors ------------------------------------------------------

    def update(self, endpoint_id: int, generation: int, **changes: Any) -> bool:
        """Apply changes from the actor of `generation`; False if it is stale or gone."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None or generation < item.generation:
                return False
            for key, value in changes.items():
                setattr(item, key, value)
            self._refresh(item)
            return True

    def mark_connected(self, endpoint_id: int, generation: int) -> bool:
        """Count a reconnect unless this is the endpoint's first connection; True if counted."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None or generation < item.generation:
                return False
            if item.connected_once:
                item.reconnects += 1
                self._refresh(item)
                return True
            item.connected_once = True
            return False

    def incr(self, endpoint_id: int, family: str, label: str, amount: float = 1.0) -> None:
        """Add to a per-endpoint counter (never reset while the endpoint exists)."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is not None:
                key = (family, label)
                item.counters[key] = item.counters.get(key, 0.0) + amount

    def observe_rtt(self, endpoint_id: int, rtts: Sequence[float], loss: float) -> None:
        """Record one probe's round-trip times (seconds) and packet loss ratio into the endpoint's `extra`."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            _observe(item, rtts, loss)

    def observe_probes(self, observations: list[tuple[int, int, float, tuple[float, ...], float]]) -> list[int]:
        """Answered probes in one lock: (endpoint_id, generation, last_data_at, rtts, loss) each.

        Like `update(last_data_at=...)` plus `observe_rtt()` per item; returns the indexes
        refused because the endpoint is gone or a newer generation owns it.
        """
        refused = []
        with self._lock:
            items = self._items
            for index, (endpoint_id, generation, at, rtts, loss) in enumerate(observations):
                item = items.get(endpoint_id)
                if item is None or generation < item.generation:
                    refused.append(index)
                    continue
                item.last_data_at = at
                self._refresh(item)
                _observe(item, rtts, loss)
        return refused

    def observe_value(self, endpoint_id: int, name: str, device: str | None, value: float) -> None:
        """The latest numeric value of a reading, within the series cap."""
        key = (name, device or "")
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            if key in item.values or self._n_values < self._max_values:
                self._n_values += key not in item.values
                item.values[key] = value
                return
            dropped = (endpoint_id, *key)
            if dropped not in self._dropped:
                self._dropped_total += 1
                if len(self._dropped) < _DROPPED_REMEMBERED:
                    self._dropped.add(dropped)

    @property
    def reading_series_dropped(self) -> int:
        """Reading series left out of fieldwatch_reading_value by the cap (a counter)."""
        with self._lock:
            return self._dropped_total

    def set_alert(self, endpoint_id: int, condition: str, subject: str, active: bool) -> None:
        """Track active alerts for fieldwatch_alerts_active."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            if active:
                item.alerts.add((condition, subject))
            else:
                item.alerts.discard((condition, subject))

    # -- reads -------------------------------------------------------------------

    def get(self, endpoint_id: int) -> EndpointStatus | None:
        """A copy of one endpoint's status."""
        with self._lock:
            item = self._items.get(endpoint_id)
            return None if item is None else item.copy()

    def find(self, site: str, name: str) -> EndpointStatus | None:
        """A copy of the endpoint named (site, name)."""
        with self._lock:
            for item in self._items.values():
                if item.site == site and item.name == name:
                    return item.copy()
            return None

    def light_snapshot(self) -> list[LightStatus]:
        """The fields the status page shows, of every endpoint: a cheap copy (the lock is held ~ms at 10,000)."""
        with self._lock:
            return [
                LightStatus(i.site, i.name, i.kind, i.enabled, i.state, i.since, i.reason, i.down_since,
                            i.last_data_at, i.fresh_within_s, i.extra)
                for i in self._items.values()
            ]  # fmt: skip

    def rows(self, endpoint_ids: Iterable[int]) -> list[StatusRow | None]:
        """The listing fields of the given endpoints, in their order (None: not on the board)."""
        with self._lock:
            get = self._rows.get
            return [get(i) for i in endpoint_ids]

    def snapshot(self) -> list[EndpointStatus]:
        """Copies of every endpoint, ordered by site and name."""
        with self._lock:
            items = [item.copy() for item in self._items.values()]
        items.sort(key=lambda s: (s.site, s.name))
        return items
