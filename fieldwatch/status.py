"""The live status board: a lock-protected read model of every endpoint.

Connection actors write their state here as it changes (and send the same
change to the persistence actors); the API and the Prometheus collector read
snapshots without asking any actor. Readers apply the freshness rule
themselves (`effective_state`), so a hung actor cannot hold an `up` that is false.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from fieldwatch import states

__all__ = ["EndpointStatus", "StatusBoard", "effective_state", "RTT_BUCKETS"]

#: Histogram buckets of fieldwatch_icmp_rtt_seconds.
RTT_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
    #: (family, label) -> value, e.g. ("mqtt_messages", "stored"), ("opcua_reads", "ok")
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    rtt_buckets: list[int] = field(default_factory=lambda: [0] * len(RTT_BUCKETS))
    rtt_sum: float = 0.0
    rtt_count: int = 0
    packet_loss: float | None = None
    #: active alerts: (condition, subject)
    alerts: set[tuple[str, str]] = field(default_factory=set)
    #: latest numeric value per (reading name, device or ""), for fieldwatch_reading_value
    values: dict[tuple[str, str], float] = field(default_factory=dict)

    def copy(self) -> EndpointStatus:
        """A deep-enough copy for readers."""
        return replace(
            self,
            counters=dict(self.counters),
            rtt_buckets=list(self.rtt_buckets),
            alerts=set(self.alerts),
            values=dict(self.values),
        )


def effective_state(status: EndpointStatus, now: float | None = None) -> tuple[str, str | None]:
    """The state a reader may report: `up` only while data is fresh."""
    if status.state == states.UP and status.fresh_within_s is not None:
        now = time.time() if now is None else now
        age = None if status.last_data_at is None else now - status.last_data_at
        if age is None or age > status.fresh_within_s:
            shown = "never" if age is None else f"{age:.1f}s ago"
            return states.STALE, f"no data within {status.fresh_within_s:g}s (last data {shown})"
    return status.state, status.reason


#: Default cap on fieldwatch_reading_value series (SPEC §3 http.max_reading_series).
MAX_READING_SERIES = 10_000
_DROPPED_REMEMBERED = 100_000


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
        self._max_values = max_reading_series
        self._n_values = 0
        self._dropped: set[tuple[int, str, str]] = set()
        self._dropped_total = 0

    # -- registration ------------------------------------------------------------

    def register(self, status: EndpointStatus) -> None:
        """Add an endpoint, or refresh its identity/config while keeping counters."""
        with self._lock:
            old = self._items.get(status.endpoint_id)
            if old is not None:
                status.counters = old.counters
                status.rtt_buckets, status.rtt_sum, status.rtt_count = old.rtt_buckets, old.rtt_sum, old.rtt_count
                status.reconnects = max(status.reconnects, old.reconnects)
                status.restarts = max(status.restarts, old.restarts)
                status.generation = max(status.generation, old.generation)
                status.connected_once = old.connected_once
                status.alerts = old.alerts
                status.values = old.values
            else:
                self._n_values += len(status.values)
            self._items[status.endpoint_id] = status

    def remove(self, endpoint_id: int) -> None:
        """Forget an endpoint (its metric series disappear)."""
        with self._lock:
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
            return True

    def mark_connected(self, endpoint_id: int, generation: int) -> bool:
        """Count a reconnect unless this is the endpoint's first connection; True if counted."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None or generation < item.generation:
                return False
            if item.connected_once:
                item.reconnects += 1
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

    def observe_rtt(self, endpoint_id: int, rtts: Iterable[float], loss: float) -> None:
        """Record ICMP round-trip times (seconds) and the probe's packet loss ratio."""
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            for rtt in rtts:
                item.rtt_sum += rtt
                item.rtt_count += 1
                for i, bound in enumerate(RTT_BUCKETS):
                    if rtt <= bound:
                        item.rtt_buckets[i] += 1
                        break
            item.packet_loss = loss

    def observe_value(self, endpoint_id: int, name: str, device: str | None, value: float) -> None:
        """The latest numeric value of a reading (OPC UA node, MQTT reading), within the series cap."""
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

    def snapshot(self) -> list[EndpointStatus]:
        """Copies of every endpoint, ordered by site and name."""
        with self._lock:
            items = [item.copy() for item in self._items.values()]
        items.sort(key=lambda s: (s.site, s.name))
        return items
