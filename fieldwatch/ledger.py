"""EndpointLedger: the one owner of endpoint status.

Everything any part of fieldwatch knows about an endpoint's status is written here
and nowhere else:

- the lifecycle, by the controller: `register`, `remove`, `begin` (hands out the
  endpoint's next generation, the only generation counter of the process, seeded from
  the stored endpoint rows), `starting`, `disable`, `fault`;
- the current incarnation's writes, by its actor through the `Incarnation` that
  `begin` returned: `transition`, `connected`, `failed`, `data`, `alert`, `resolve`,
  `count`, `value`, `observe`, `event`, `reading`. A write of an incarnation that is no
  longer the newest is refused here, in one place; the "log an error once on entering a
  failure state, info on recovery, never a line per retry" rule is here, in one place;
- the readers' view: `get`, `find`, `snapshot`, `rows`, `light_snapshot`; readers apply
  the freshness rule (`fieldwatch.status.fresh_state`) to what they get.

Storage writes go through the ledger too (it holds the StorageGateway); the writer
still screens them by generation with its own index (seeded once from the database,
kept current by the `GenerationStarted` writes `begin` submits).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fieldwatch import states
from fieldwatch.policy import backoff_delay
from fieldwatch.status import EndpointStatus, LightStatus, StatusRow
from fieldwatch.storage import writes

if TYPE_CHECKING:
    from fieldwatch.policy import Backoff
    from fieldwatch.storage.gateway import StorageGateway

__all__ = ["MAX_READING_SERIES", "EndpointLedger", "Failure", "Incarnation"]

logger = logging.getLogger(__name__)

#: Default cap on fieldwatch_reading_value series (SPEC §3 http.max_reading_series).
MAX_READING_SERIES = 10_000
_DROPPED_REMEMBERED = 100_000

_SEVERITY = {states.DOWN: "critical", states.FAULTY: "critical", states.STALE: "warning"}

A = TypeVar("A")
#: folds one observation into an endpoint's `extra` (None at first) and returns it
Fold = Callable[[Any, A], Any]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a connection attempt or a connection failed: the state it implies and the reason shown."""

    state: str  # states.DOWN or states.FAULTY
    reason: str
    exc_type: str | None = None

    @property
    def message(self) -> str:
        """The reason as stored and shown (a kind's failure may add detail)."""
        return self.reason


class EndpointLedger:
    """Thread-safe map endpoint_id -> EndpointStatus with its one writer API (see the module doc).

    It also keeps the latest numeric reading values, at most `max_reading_series` of
    them over all endpoints; a new series past the cap is left out and counted once
    in `reading_series_dropped` (once per distinct series while fewer than 100,000 are
    remembered, then once per reading).
    """

    def __init__(self, storage: StorageGateway, *, max_reading_series: int = MAX_READING_SERIES) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._items: dict[int, EndpointStatus] = {}
        #: each item's listing fields, refreshed by every write that changes one (under _lock),
        #: so a listing of 10,000 endpoints reads 10,000 ready rows instead of building them
        self._rows: dict[int, StatusRow] = {}
        #: endpoints shown `connecting` by `starting()` whose actor has not written yet
        self._starting: set[int] = set()
        #: the newest incarnation begun per endpoint (its actor takes it by generation: `incarnation`)
        self._begun: dict[int, Incarnation] = {}
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
        )  # fmt: skip

    # -- lifecycle (the controller) ----------------------------------------------

    def register(
        self,
        endpoint_id: int,
        *,
        site: str,
        name: str,
        kind: str,
        enabled: bool,
        generation: int = 0,
        restarts: int = 0,
        reconnects: int = 0,
    ) -> None:
        """Add an endpoint `disabled` (not started yet), or refresh its identity keeping its counters.

        `generation`, `restarts` and `reconnects` are the stored values: the generation
        counter continues from the highest of them and what this process handed out.
        """
        status = EndpointStatus(
            endpoint_id=endpoint_id, site=site, name=name, kind=kind, enabled=enabled, state=states.DISABLED,
            reason="not started yet" if enabled else "disabled", generation=generation, restarts=restarts,
            reconnects=reconnects,
        )  # fmt: skip
        with self._lock:
            old = self._items.get(endpoint_id)
            if old is not None:
                status.counters = old.counters
                status.extra = old.extra
                status.reconnects = max(status.reconnects, old.reconnects)
                status.restarts = max(status.restarts, old.restarts)
                status.generation = max(status.generation, old.generation)
                status.connected_once = old.connected_once
                status.alerts = old.alerts
                status.values = old.values
            self._starting.discard(endpoint_id)
            self._items[endpoint_id] = status
            self._refresh(status)

    def remove(self, endpoint_id: int) -> None:
        """Forget an endpoint (its metric series disappear; its incarnations' writes are refused)."""
        with self._lock:
            self._rows.pop(endpoint_id, None)
            self._starting.discard(endpoint_id)
            self._begun.pop(endpoint_id, None)
            item = self._items.pop(endpoint_id, None)
            if item is not None:
                self._n_values -= len(item.values)

    def begin(self, endpoint_id: int, restarts: int = 0) -> Incarnation:
        """A new actor instance of the endpoint: the next generation; older ones are refused from now.

        Stores the generation (`GenerationStarted`, which the writer screens by) and the
        counters. An endpoint that is not registered gets a refused incarnation (generation 0).
        """
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return Incarnation(self, endpoint_id, 0, "?", "?", from_disabled=False)
            item.generation += 1
            item.restarts = max(item.restarts, restarts)
            from_disabled = item.state == states.DISABLED or endpoint_id in self._starting
            self._refresh(item)
            inc = Incarnation(self, endpoint_id, item.generation, item.site, item.name, from_disabled=from_disabled)
            self._begun[endpoint_id] = inc
            counters = writes.Counters(
                endpoint_id=endpoint_id, generation=item.generation, restarts=item.restarts, reconnects=item.reconnects
            )
        self.storage.submit_many(
            (writes.GenerationStarted(endpoint_id=endpoint_id, generation=inc.generation), counters)
        )
        return inc

    def incarnation(self, endpoint_id: int, generation: int) -> Incarnation:
        """The incarnation `begin` handed out as `generation` (its actor takes it when it is built).

        Any other generation gets an incarnation of its own, refused once a newer one began.
        """
        with self._lock:
            inc = self._begun.get(endpoint_id)
            if inc is not None and inc.generation == generation:
                return inc
            item = self._items.get(endpoint_id)
            site, name = ("?", "?") if item is None else (item.site, item.name)
        return Incarnation(self, endpoint_id, generation, site, name, from_disabled=False)

    def starting(self, endpoint_id: int) -> None:
        """An actor was just spawned for a `disabled` endpoint: readers see `connecting` at once.

        Not stored: the actor's first transition stores "disabled->connecting".
        """
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            item.enabled = True
            if item.state == states.DISABLED:
                item.state, item.since, item.reason = states.CONNECTING, time.time(), "start requested"
                self._starting.add(endpoint_id)
                self._refresh(item)

    def disable(self, endpoint_id: int, reason: str) -> None:
        """The endpoint's actor was stopped by a command: `disabled`, stored, event, alerts resolved."""
        now = time.time()
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            previous, alerts = item.state, sorted(item.alerts)
            item.enabled = False
            item.state, item.since, item.reason, item.down_since = states.DISABLED, now, reason, None
            item.alerts.clear()
            self._starting.discard(endpoint_id)
            self._refresh(item)
            gen, site, name, last = item.generation, item.site, item.name, item.last_data_at
        out: list[writes.Write] = [
            writes.StateChange(endpoint_id=endpoint_id, generation=gen, state=states.DISABLED, since=now, reason=reason,
                               down_since=None, last_data_at=last),
            writes.EventRecord(endpoint_id=endpoint_id, generation=gen, time=now, level="info",
                               event=f"{previous}->disabled", message=reason, site_name=site, endpoint_name=name),
        ]  # fmt: skip
        out.extend(
            writes.AlertResolve(endpoint_id=endpoint_id, generation=gen, condition=condition, time=now, subject=subject)
            for condition, subject in alerts
        )
        self.storage.submit_many(out)

    def fault(self, endpoint_id: int, reason: str) -> None:
        """The endpoint cannot run (e.g. its kind's actor cannot load): `faulty`, stored, alert opened."""
        logger.error("endpoint %d: %s", endpoint_id, reason)
        now = time.time()
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return
            item.state, item.since, item.reason = states.FAULTY, now, reason
            item.alerts.add((states.FAULTY, ""))
            self._starting.discard(endpoint_id)
            self._refresh(item)
            gen, down_since, last = item.generation, item.down_since, item.last_data_at
        self.storage.submit_many((
            writes.StateChange(endpoint_id=endpoint_id, generation=gen, state=states.FAULTY, since=now, reason=reason,
                               down_since=down_since, last_data_at=last),
            writes.AlertOpen(endpoint_id=endpoint_id, generation=gen, condition=states.FAULTY, severity="critical",
                             message=reason, time=now),
        ))  # fmt: skip

    # -- folds of a kind's live figures --------------------------------------------

    def observe_many(self, fold: Fold[A], items: Sequence[tuple[int, int, float | None, A]]) -> list[int]:
        """Fold observations `(endpoint_id, generation, last_data_at | None, arg)` in one lock.

        For each: `extra = fold(extra, arg)` and, when given, the new last_data_at. Returns
        the indexes refused because the endpoint is gone or a newer generation owns it.
        """
        refused = []
        with self._lock:
            get = self._items.get
            for index, (endpoint_id, generation, at, arg) in enumerate(items):
                item = get(endpoint_id)
                if item is None or generation < item.generation:
                    refused.append(index)
                    continue
                if at is not None:
                    item.last_data_at = at
                    self._refresh(item)
                item.extra = fold(item.extra, arg)
        return refused

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
                            i.last_data_at, i.fresh_within_s, None if i.extra is None else i.extra.copy())
                for i in self._items.values()
            ]  # fmt: skip

    def rows(self, endpoint_ids: Iterable[int]) -> list[StatusRow | None]:
        """The listing fields of the given endpoints, in their order (None: not in the ledger)."""
        with self._lock:
            get = self._rows.get
            return [get(i) for i in endpoint_ids]

    def snapshot(self) -> list[EndpointStatus]:
        """Copies of every endpoint, ordered by site and name."""
        with self._lock:
            items = [item.copy() for item in self._items.values()]
        items.sort(key=lambda s: (s.site, s.name))
        return items

    @property
    def reading_series_dropped(self) -> int:
        """Reading series left out of fieldwatch_reading_value by the cap (a counter)."""
        with self._lock:
            return self._dropped_total

    # -- for Incarnation (the caller holds _lock) ----------------------------------

    def _current(self, endpoint_id: int, generation: int) -> EndpointStatus | None:
        """The endpoint's item if `generation` still owns it (the one staleness check)."""
        item = self._items.get(endpoint_id)
        if item is None or generation < item.generation:
            return None
        return item

    def _value(self, item: EndpointStatus, key: tuple[str, str], value: float) -> None:
        if key in item.values or self._n_values < self._max_values:
            self._n_values += key not in item.values
            item.values[key] = value
            return
        dropped = (item.endpoint_id, *key)
        if dropped not in self._dropped:
            self._dropped_total += 1
            if len(self._dropped) < _DROPPED_REMEMBERED:
                self._dropped.add(dropped)


class Incarnation:
    """The writes of one actor instance (generation) of an endpoint; held by its actor.

    Every write is refused once a newer generation began (or the endpoint was removed).
    """

    def __init__(
        self, ledger: EndpointLedger, endpoint_id: int, generation: int, site: str, name: str, *, from_disabled: bool
    ) -> None:
        self.ledger = ledger
        self.storage = ledger.storage
        self.endpoint_id = endpoint_id
        self.generation = generation
        self.site = site
        self.name = name
        self.log: logging.Logger | logging.LoggerAdapter[Any] = logger
        #: readers demote `up` to `stale` when data is older than this (None: the state alone)
        self.fresh_within_s: float | None = None
        #: the history this incarnation stores starts from `disabled` (the controller started it)
        self._from_disabled = from_disabled
        self._attempt = 0
        self._connected_at: float | None = None
        self._touch_stored_at = 0.0

    # -- what the actor reads ------------------------------------------------------

    def _field(self, name: str, default: Any) -> Any:
        with self.ledger._lock:
            item = self.ledger._items.get(self.endpoint_id)
            return default if item is None else getattr(item, name)

    @property
    def state(self) -> str:
        """The endpoint's state as this incarnation's history has it."""
        if self._from_disabled:
            return states.DISABLED
        return str(self._field("state", states.DISABLED))

    @property
    def since(self) -> float:
        """When the current state was entered."""
        return float(self._field("since", time.time()))

    @property
    def reason(self) -> str | None:
        """The current state's reason."""
        reason: str | None = self._field("reason", None)
        return reason

    @property
    def last_data_at(self) -> float | None:
        """When data last arrived (None: never)."""
        at: float | None = self._field("last_data_at", None)
        return at

    @property
    def alerts(self) -> set[tuple[str, str]]:
        """A copy of the endpoint's active alerts: (condition, subject)."""
        return set(self._field("alerts", set()))

    def current(self) -> bool:
        """Whether this is still the endpoint's newest generation."""
        with self.ledger._lock:
            return self.ledger._current(self.endpoint_id, self.generation) is not None

    # -- state -------------------------------------------------------------------

    def transition(self, state: str, reason: str | None = None, exc_type: str | None = None) -> bool:
        """Move to `state`: stored, event, alerts, one log line. Same state+reason is a no-op.

        An error is logged on entering a failure state, info on leaving one, and a new
        reason within the same state is stored quietly (no line per retry). False if refused.
        """
        ledger = self.ledger
        now = time.time()
        with ledger._lock:
            item = ledger._current(self.endpoint_id, self.generation)
            if item is None:
                return False
            previous = states.DISABLED if self._from_disabled else item.state
            if state == previous and reason == item.reason:
                return True
            self._from_disabled = False
            ledger._starting.discard(self.endpoint_id)
            quiet = state == previous
            if quiet:  # same state, new reason: store it quietly
                item.reason = reason
            else:
                item.state, item.since, item.reason = state, now, reason
                if state == states.DOWN:
                    item.down_since = now if previous != states.DOWN else item.down_since
                elif state == states.UP:
                    item.down_since = None
            item.fresh_within_s = self.fresh_within_s
            ledger._refresh(item)
            since, down_since, last = item.since, item.down_since, item.last_data_at
            resolved = [] if quiet else [
                c for c in (states.DOWN, states.STALE, states.FAULTY)
                if c != state and (c == previous or state == states.UP)
            ]  # fmt: skip
            for condition in resolved:
                item.alerts.discard((condition, ""))
            opened = not quiet and state in states.ALERTING
            if opened:
                item.alerts.add((state, ""))
        if quiet:
            level, event = "debug", "state"
        else:
            if state in states.ALERTING:
                self.log.error("%s -> %s: %s", previous, state, reason)
            elif previous in states.ALERTING:
                self.log.info("%s -> %s (recovered): %s", previous, state, reason or "")
            else:
                self.log.info("%s -> %s: %s", previous, state, reason or "")
            level = "error" if state in (states.DOWN, states.FAULTY) else "warning" if state == states.STALE else "info"
            event = f"{previous}->{state}"
        eid, gen = self.endpoint_id, self.generation
        out: list[writes.Write] = [
            writes.StateChange(endpoint_id=eid, generation=gen, state=state, since=since, reason=reason,
                               down_since=down_since, last_data_at=last),
            self._event_record(now, level, event, reason or "", exc_type, self._attempt or None),
        ]  # fmt: skip
        # Alerts: one per (endpoint, condition); leaving a failure state resolves it.
        # Reaching `up` resolves every failure condition, also ones opened by an earlier
        # incarnation of the daemon (resolving is idempotent in storage).
        out.extend(
            writes.AlertResolve(endpoint_id=eid, generation=gen, condition=c, time=now, subject="") for c in resolved
        )
        if opened:
            out.append(writes.AlertOpen(endpoint_id=eid, generation=gen, condition=state, severity=_SEVERITY[state],
                                        message=reason or state, time=now))  # fmt: skip
        self.storage.submit_many(out)
        return True

    def connected(self, reason: str | None = None) -> None:
        """The link is established (and verified): count a reconnect, reset the backoff, go `up`."""
        self._connected_at = time.monotonic()
        self._attempt = 0
        counters = None
        with self.ledger._lock:
            item = self.ledger._current(self.endpoint_id, self.generation)
            if item is None:
                return
            if item.connected_once:
                item.reconnects += 1
                counters = writes.Counters(endpoint_id=self.endpoint_id, generation=self.generation,
                                           restarts=item.restarts, reconnects=item.reconnects)  # fmt: skip
            item.connected_once = True
            if item.last_data_at is None or self.fresh_within_s is None:
                item.last_data_at = time.time()
            self.ledger._refresh(item)
        if counters is not None:
            self.storage.submit(counters)
        self.transition(states.UP, reason or "connected")

    def failed(self, failure: Failure, backoff: Backoff) -> float:
        """Enter `failure.state` (down or faulty); the delay before the next attempt (faulty: the maximum)."""
        if self._connected_at is not None and time.monotonic() - self._connected_at >= backoff.reset_after_s:
            self._attempt = 0
        self._connected_at = None
        delay = backoff.max_s if failure.state == states.FAULTY else backoff_delay(backoff, self._attempt)
        self._attempt += 1
        reason = failure.message
        if failure.state == self.state and reason == self.reason:
            self.log.debug("attempt %d failed again (%s); next in %.1fs", self._attempt, reason, delay)
        self.transition(failure.state, reason, failure.exc_type)
        return delay

    def data(self, at: float | None = None) -> None:
        """Fresh data arrived: remember when (stored at most once a second), and leave `stale` for `up`."""
        at = at or time.time()
        with self.ledger._lock:
            item = self.ledger._current(self.endpoint_id, self.generation)
            if item is None:
                return
            item.last_data_at = at
            self.ledger._refresh(item)
            stale = item.state == states.STALE and not self._from_disabled
        # The ledger is the live truth for readers; the stored last_data_at (for history and
        # restarts) is refreshed at most once a second per endpoint, and with every state change.
        if at - self._touch_stored_at >= 1.0:
            self._touch_stored_at = at
            self.storage.submit(writes.Touch(endpoint_id=self.endpoint_id, generation=self.generation, last_data_at=at))
        if stale:
            self.transition(states.UP, "data flowing again")

    # -- alerts and live figures -----------------------------------------------------

    def alert(self, condition: str, severity: str, message: str, subject: str = "") -> None:
        """Open (idempotently) the alert for (condition, subject)."""
        if self._alert_flag(condition, subject, True):
            self.storage.submit(writes.AlertOpen(endpoint_id=self.endpoint_id, generation=self.generation,
                                                 condition=condition, severity=severity, message=message,
                                                 time=time.time(), subject=subject))  # fmt: skip

    def resolve(self, condition: str, subject: str = "") -> None:
        """Resolve the active alert for (condition, subject), if any."""
        if self._alert_flag(condition, subject, False):
            self.storage.submit(writes.AlertResolve(endpoint_id=self.endpoint_id, generation=self.generation,
                                                    condition=condition, time=time.time(), subject=subject))  # fmt: skip

    def _alert_flag(self, condition: str, subject: str, active: bool) -> bool:
        with self.ledger._lock:
            item = self.ledger._current(self.endpoint_id, self.generation)
            if item is None:
                return False
            if active:
                item.alerts.add((condition, subject))
            else:
                item.alerts.discard((condition, subject))
            return True

    def count(self, family: str, label: str, amount: float = 1.0) -> None:
        """Add to a per-endpoint metric counter (e.g. ("mqtt_messages", "stored")); never reset.

        Counted for any generation (work an older incarnation finished, e.g. readings it
        got committed, still happened), while the endpoint exists.
        """
        with self.ledger._lock:
            item = self.ledger._items.get(self.endpoint_id)
            if item is not None:
                key = (family, label)
                item.counters[key] = item.counters.get(key, 0.0) + amount

    def value(self, name: str, device: str | None, value: float) -> None:
        """The latest numeric value of a reading (fieldwatch_reading_value), within the series cap."""
        with self.ledger._lock:
            item = self.ledger._items.get(self.endpoint_id)
            if item is not None:
                self.ledger._value(item, (name, device or ""), value)

    def observe(self, fold: Fold[A], arg: A, at: float | None = None) -> bool:
        """Fold one observation into the kind's live figures (`observe_many` of one); False if refused."""
        return not self.ledger.observe_many(fold, ((self.endpoint_id, self.generation, at, arg),))

    # -- records -------------------------------------------------------------------

    def _event_record(
        self, now: float, level: str, event: str, message: str, exc_type: str | None, attempt: int | None
    ) -> writes.EventRecord:
        return writes.EventRecord(
            endpoint_id=self.endpoint_id, generation=self.generation, time=now, level=level, event=event,
            message=message[:2000], exc_type=exc_type, attempt=attempt, site_name=self.site, endpoint_name=self.name,
        )  # fmt: skip

    def event(
        self, level: str, event: str, message: str, *, exc_type: str | None = None, attempt: int | None = None
    ) -> None:
        """Append to the connection event log (through the writer)."""
        self.storage.submit(self._event_record(time.time(), level, event, message, exc_type, attempt))

    def reading(
        self,
        name: str,
        value_num: float | None,
        value_text: str | None = None,
        *,
        quality: str = "Good",
        source_time: float | None = None,
        device: str | None = None,
        msg_key: str | None = None,
        aux_name: str | None = None,
        aux_num: float | None = None,
        on_commit: Callable[[bool], None] | None = None,
        gauge: bool = True,
    ) -> None:
        """Queue a reading for storage (`aux_*`: a companion value stored in the same row).

        A numeric value also becomes the endpoint's fieldwatch_reading_value for this
        name and device, unless `gauge` is False (a kind with metrics of its own).
        """
        if gauge and value_num is not None:
            self.value(name, device, value_num)
        self.storage.submit(self.reading_record(
            name, value_num, value_text, quality=quality, source_time=source_time, device=device, msg_key=msg_key,
            aux_name=aux_name, aux_num=aux_num, on_commit=on_commit,
        ))  # fmt: skip

    def reading_record(
        self,
        name: str,
        value_num: float | None,
        value_text: str | None = None,
        *,
        quality: str = "Good",
        source_time: float | None = None,
        received_at: float | None = None,
        device: str | None = None,
        msg_key: str | None = None,
        aux_name: str | None = None,
        aux_num: float | None = None,
        on_commit: Callable[[bool], None] | None = None,
    ) -> writes.ReadingRecord:
        """The record of a reading of this incarnation (for a caller that submits many at once)."""
        return writes.ReadingRecord(
            endpoint_id=self.endpoint_id, generation=self.generation, name=name, value_num=value_num,
            value_text=value_text, quality=quality, source_time=source_time,
            received_at=time.time() if received_at is None else received_at, device=device, msg_key=msg_key,
            aux_name=aux_name, aux_num=aux_num, on_commit=on_commit,
        )  # fmt: skip
