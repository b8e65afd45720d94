"""One actor generation's writes to the ledger (`Incarnation`), and the one failure shape (`Failure`).

Part of `fieldwatch.ledger`: an incarnation works on its ledger's items under the
ledger's lock (the package's own private members), checking its generation first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fieldwatch import states
from fieldwatch.policy import backoff_delay
from fieldwatch.storage import writes

if TYPE_CHECKING:
    from fieldwatch.ledger import EndpointLedger
    from fieldwatch.policy import Backoff

__all__ = ["Failure", "Fold", "Incarnation"]

logger = logging.getLogger("fieldwatch.ledger")

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
        #: cluster: the site's lease epoch when this incarnation began (None: single instance,
        #: or the site was not held); the writer fences its writes by it
        self.epoch: int | None = None
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
        """Add to a per-endpoint metric counter (e.g. (messages family, "stored")); never reset.

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

    def store(self, record: writes.ReadingRecord, *, gauge: bool = True) -> None:
        """Queue a reading (built by `reading_record`) for storage.

        A numeric value also becomes the endpoint's fieldwatch_reading_value for this
        name and device, unless `gauge` is False (a kind with metrics of its own).
        """
        if gauge and record.value_num is not None:
            self.value(record.name, record.device, record.value_num)
        self.storage.submit(record)

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
