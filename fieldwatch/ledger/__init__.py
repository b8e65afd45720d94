"""EndpointLedger: the one owner of endpoint status.

Everything any part of fieldwatch knows about an endpoint's status is written here
and nowhere else:

- the lifecycle, by the controller: `register`, `remove`, `begin` (hands out the
  endpoint's next generation, the only generation counter of the process, seeded from
  the stored endpoint rows), `starting`, `disable`, `fault`;
- the current incarnation's writes, by its actor through the `Incarnation` that
  `begin` returned: `transition`, `connected`, `failed`, `data`, `alert`, `resolve`,
  `count`, `value`, `observe`, `event`, `store` (a reading built by `reading_record`). A write of an incarnation that is no
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
from typing import TYPE_CHECKING, Any

from fieldwatch import states
from fieldwatch.ledger.incarnation import A, Failure, Fold, Incarnation
from fieldwatch.status import EndpointStatus, LightStatus, StatusRow
from fieldwatch.storage import writes

if TYPE_CHECKING:
    from fieldwatch.storage.gateway import StorageGateway

__all__ = ["MAX_READING_SERIES", "EndpointLedger", "Failure", "Fold", "Incarnation"]

logger = logging.getLogger(__name__)

#: Default cap on fieldwatch_reading_value series (SPEC §3 http.max_reading_series).
MAX_READING_SERIES = 10_000
_DROPPED_REMEMBERED = 100_000


#: The ledger's change log keeps at most this many changes (then the older half goes): 2 to 4
#: minutes of 10,000 endpoints answering every 10 s, 2 MB. A listing further behind builds its
#: views from every row.
_LOG_MAX = 1 << 18


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
        #: the ids of the endpoints whose row changed (or went), in order: the change numbered
        #: `_log_base + i + 1` is `_log[i]`, so a listing finds what changed since it last looked
        #: without reading every row (`changes_since`); the older half is dropped when it grows long
        self._log: list[int] = []
        self._log_base = 0
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
        endpoint_id = s.endpoint_id
        self._rows[endpoint_id] = tuple.__new__(
            StatusRow,
            (endpoint_id, s.state, s.since, s.reason, s.down_since, s.last_data_at, s.generation, s.restarts,
             s.reconnects, s.fresh_within_s),
        )  # fmt: skip
        self._logged(endpoint_id)

    def _logged(self, endpoint_id: int) -> None:
        """Append a changed (or removed) endpoint to the change log, trimmed at _LOG_MAX. Under _lock."""
        self._log.append(endpoint_id)
        if len(self._log) > _LOG_MAX:
            self._trim_log()

    def _trim_log(self) -> None:
        """Drop the older half of the change log (a reader behind it reads every row again)."""
        half = len(self._log) // 2
        self._log_base += half
        del self._log[:half]

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
            self._logged(endpoint_id)
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
            inc.epoch = self._epoch(item.site)
            self._begun[endpoint_id] = inc
            counters = writes.Counters(
                endpoint_id=endpoint_id, generation=item.generation, restarts=item.restarts, reconnects=item.reconnects
            )
        self.storage.submit_many(
            (writes.GenerationStarted(endpoint_id=endpoint_id, generation=inc.generation, epoch=inc.epoch), counters)
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
        if self.runs_site is not None and not self.runs_site(site):
            return  # cluster: the site's owner stores it
        epoch = self._epoch(site)
        out: list[writes.Write] = [
            writes.StateChange(endpoint_id=endpoint_id, generation=gen, state=states.DISABLED, since=now, reason=reason,
                               down_since=None, last_data_at=last, epoch=epoch),
            writes.EventRecord(endpoint_id=endpoint_id, generation=gen, time=now, level="info",
                               event=f"{previous}->disabled", message=reason, site_name=site, endpoint_name=name,
                               epoch=epoch),
        ]  # fmt: skip
        out.extend(
            writes.AlertResolve(endpoint_id=endpoint_id, generation=gen, condition=condition, time=now, subject=subject,
                                epoch=epoch)
            for condition, subject in alerts
        )  # fmt: skip
        self.storage.submit_many(out)

    # -- cluster (SPEC section 10; fieldwatch/cluster/runner.py) ---------------------

    #: None: a single instance (it runs and stores every site); else "does this instance run
    #: the site now": `disable` stores nothing for a site another instance runs (its owner does)
    runs_site: Callable[[str], bool] | None = None

    #: None: a single instance; else the lease epoch under which this instance holds a site
    #: now (None: not held). `begin` records it for the incarnation (GenerationStarted.epoch)
    #: and `disable`/`fault` put it on their records: the writer fences writes by it.
    epoch_of: Callable[[str], int | None] | None = None

    def _epoch(self, site: str) -> int | None:
        return None if self.epoch_of is None else self.epoch_of(site)

    def mirror(self, endpoint_id: int, **fields: Any) -> bool:
        """Show what another instance stored for an endpoint this instance does not run (its
        state, since, reason, down_since, last_data_at, restarts, reconnects, generation, read
        from the database); nothing is stored, alerts here are dropped (the owner has them).

        The generation only ever grows, so a write of an older incarnation of this process
        (one that ran the site before losing it) is refused from then on.
        """
        allowed = {"state", "since", "reason", "down_since", "last_data_at", "restarts", "reconnects"}
        with self._lock:
            item = self._items.get(endpoint_id)
            if item is None:
                return False
            generation = fields.pop("generation", None)
            if generation is not None:
                item.generation = max(item.generation, int(generation))
            for key, value in fields.items():
                if key in allowed:
                    setattr(item, key, value)
            item.alerts.clear()
            self._starting.discard(endpoint_id)
            self._refresh(item)
            return True

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
            gen, down_since, last, site = item.generation, item.down_since, item.last_data_at, item.site
        epoch = self._epoch(site)
        self.storage.submit_many((
            writes.StateChange(endpoint_id=endpoint_id, generation=gen, state=states.FAULTY, since=now, reason=reason,
                               down_since=down_since, last_data_at=last, epoch=epoch),
            writes.AlertOpen(endpoint_id=endpoint_id, generation=gen, condition=states.FAULTY, severity="critical",
                             message=reason, time=now, epoch=epoch),
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

    def connecting(self) -> int:
        """How many endpoints are `connecting` (not yet up, down or failed once)."""
        with self._lock:
            return sum(1 for row in self._rows.values() if row.state == states.CONNECTING)

    def rows(self, endpoint_ids: Iterable[int]) -> list[StatusRow | None]:
        """The listing fields of the given endpoints, in their order (None: not in the ledger)."""
        with self._lock:
            get = self._rows.get
            return [get(i) for i in endpoint_ids]

    def changes_since(self, version: int) -> tuple[int, dict[int, StatusRow | None] | None]:
        """The current version, and the current row (None: removed) of every endpoint whose row
        changed after `version`: as many as changed, however many endpoints there are. None
        instead when the log no longer reaches back to `version` (read every row instead)."""
        with self._lock:
            log, base = self._log, self._log_base
            current = base + len(log)
            if version < base:
                return current, None
            get = self._rows.get
            return current, {i: get(i) for i in log[version - base :]}

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
