"""Applying a batch of writes in one transaction, and deciding which writes to discard.

`EndpointIndex` is the writer's view of which endpoints exist and their newest
generation; `EndpointIndex.screen` splits a batch into accepted and discarded writes
without changing the index (a failed transaction is retried with the same verdict);
`apply_writes` turns accepted writes into a handful of bulk statements and returns the
readings the `msg_key` unique index suppressed (their on_commit gets inserted=False).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import peewee
from psycopg2.extras import execute_batch

from fieldwatch.storage.db import is_sqlite
from fieldwatch.storage.raw import SeriesCache, insert_readings
from fieldwatch.storage.rollup_state import DeferredRollups
from fieldwatch.storage.sqlbits import clean, insert_rows, pg_minmax
from fieldwatch.storage.writes import (
    SAMPLE_MAX_CHARS,
    AlertOpen,
    AlertResolve,
    Counters,
    DeviceSeen,
    EventRecord,
    GenerationStarted,
    ParseErrorRecord,
    ReadingRecord,
    StateChange,
    TopicSeen,
    Touch,
    Write,
)

__all__ = ["EndpointIndex", "Fenced", "Screened", "WriteFence", "apply_writes", "split_fenced"]

logger = logging.getLogger(__name__)
_wrap_errors: Any = vars(peewee)["__exception_wrapper__"]

_OLD_GEN_LOG_INTERVAL_S = 60.0


@dataclass(slots=True)
class Screened:
    """A batch split by `EndpointIndex.screen`; `generations` is applied on commit."""

    accepted: list[Write] = field(default_factory=list)
    stale: list[Write] = field(default_factory=list)
    orphans: list[Write] = field(default_factory=list)
    generations: dict[int, int] = field(default_factory=dict)
    #: (endpoint, generation) -> lease epoch, begun in this batch (GenerationStarted.epoch)
    epochs: dict[tuple[int, int], int | None] = field(default_factory=dict)


class EndpointIndex:
    """Endpoints the writer knows: id -> (site name, endpoint name) and newest generation."""

    def __init__(self) -> None:
        self.names: dict[int, tuple[str, str]] = {}
        self.generations: dict[int, int] = {}
        #: endpoint -> (generation, lease epoch) of its newest GenerationStarted seen (cluster)
        self.epochs: dict[int, tuple[int, int | None]] = {}
        self.deleted: set[int] = set()
        self.series = SeriesCache()
        self._orphans_logged: set[int] = set()
        self._stale_log: dict[int, tuple[float, int]] = {}

    def refresh(self, db: peewee.Database) -> set[int]:
        """Reload names from the database; return the ids that disappeared (now deleted).

        An endpoint's generation is read once, when the index first sees it; from then on
        only `GenerationStarted` writes move it (the ledger hands generations out, and
        nothing is copied back to it from here).
        """
        cursor = db.execute_sql(
            "SELECT e.id, s.name, e.name, e.generation FROM endpoint e JOIN site s ON s.id = e.site_id"
        )
        names: dict[int, tuple[str, str]] = {}
        for endpoint_id, site_name, name, generation in cursor.fetchall():
            names[endpoint_id] = (site_name, name)
            self.generations.setdefault(endpoint_id, generation)
        gone = set(self.names) - set(names)
        self.series.forget_endpoints(gone)
        for endpoint_id in gone:
            self.generations.pop(endpoint_id, None)
            self.epochs.pop(endpoint_id, None)
        self.deleted |= gone
        self.names = names
        return gone

    def screen(self, db: peewee.Database, batch: Sequence[Write]) -> Screened:
        """Split `batch` in order: accepted, older generation, unknown or deleted endpoint."""
        out = Screened()
        refreshed = False
        for write in batch:
            endpoint_id = write.endpoint_id
            if endpoint_id is None:  # an event about no endpoint in particular
                out.accepted.append(write)
                continue
            if endpoint_id not in self.names:
                if not refreshed and endpoint_id not in self.deleted:
                    self.refresh(db)  # created by another instance or a command we missed
                    refreshed = True
                if endpoint_id not in self.names:
                    out.orphans.append(write)
                    continue
            current = out.generations.get(endpoint_id, self.generations.get(endpoint_id, 0))
            if type(write) is GenerationStarted:
                if write.generation >= current:
                    out.generations[endpoint_id] = write.generation
                    out.epochs[(endpoint_id, write.generation)] = write.epoch
                    out.accepted.append(write)
                else:
                    out.stale.append(write)
            elif write.generation < current:
                out.stale.append(write)
            else:
                out.accepted.append(write)
        return out

    def committed(self, screened: Screened) -> None:
        """Record the generations a committed batch started, and log what it discarded."""
        self.generations.update(screened.generations)
        for (begun_id, generation), epoch in screened.epochs.items():
            if generation >= self.epochs.get(begun_id, (-1, None))[0]:
                self.epochs[begun_id] = (generation, epoch)
        for write in screened.orphans:
            endpoint_id = write.endpoint_id
            assert endpoint_id is not None
            if endpoint_id not in self._orphans_logged:
                self._orphans_logged.add(endpoint_id)
                logger.warning(
                    "[storage/writer] endpoint %d does not exist (deleted): discarding its writes (logged once)",
                    endpoint_id,
                )
        now = time.monotonic()
        for write in screened.stale:
            endpoint_id = write.endpoint_id
            assert endpoint_id is not None
            last, suppressed = self._stale_log.get(endpoint_id, (-_OLD_GEN_LOG_INTERVAL_S, 0))
            if now - last >= _OLD_GEN_LOG_INTERVAL_S:
                site, name = self.names.get(endpoint_id, ("?", str(endpoint_id)))
                logger.warning(
                    "[sites/%s/%s] discarding %s from generation %d (current %d; %d more suppressed)",
                    site,
                    name,
                    type(write).__name__,
                    write.generation,
                    self.generations.get(endpoint_id, 0),
                    suppressed,
                )
                self._stale_log[endpoint_id] = (now, 0)
            else:
                self._stale_log[endpoint_id] = (last, suppressed + 1)

    def epoch_of(self, write: Write, screened: Screened) -> int | None:
        """The lease epoch `write` was made under: its own, else its generation's (None: unknown).

        Equivalent to every record carrying its incarnation's epoch: a write of generation
        g comes from the incarnation `begin` handed out as g, whose GenerationStarted (with
        the epoch) was queued before it, and writes of older generations never get here.
        """
        if write.epoch is not None or write.endpoint_id is None:
            return write.epoch
        key = (write.endpoint_id, write.generation)
        if key in screened.epochs:
            return screened.epochs[key]
        begun = self.epochs.get(write.endpoint_id)
        return begun[1] if begun is not None and begun[0] == write.generation else None


class WriteFence(Protocol):
    """The cluster's check of writes against site leases (fieldwatch.cluster.fencing)."""

    def refused(self, cursor: Any, epochs: Mapping[str, int]) -> set[str]:
        """The sites of `epochs` (site -> epoch) this instance may no longer write for (one
        statement, inside the batch's transaction, locking the leases until it ends)."""
        ...

    def fenced(self, counts: Mapping[str, int], epochs: Mapping[str, int | None]) -> None:
        """After the commit: `counts` writes per site were left out (count, log once per episode);
        `epochs` are the sites whose writes passed (their episode ends)."""
        ...


@dataclass(slots=True)
class Fenced:
    """What `split_fenced` decided for a batch."""

    kept: list[Write]
    #: writes left out, per site
    counts: dict[str, int]
    #: site -> epoch of the sites whose writes passed
    passed: dict[str, int | None]
    #: endpoint -> the lease epoch its kept writes were made under (apply_writes' guard)
    endpoint_epochs: dict[int, int]


def split_fenced(db: peewee.Database, fence: WriteFence, index: EndpointIndex, screened: Screened) -> Fenced:
    """Inside the batch's transaction: the accepted writes minus those of fenced sites.

    A write whose epoch is unknown (its incarnation began while this instance did not hold
    the site) is fenced without asking; of several epochs for one site in a batch only the
    newest can still be the lease's. Writes about no endpoint are always kept.
    """
    keys: list[tuple[str, int | None] | None] = []
    newest: dict[str, int] = {}
    for write in screened.accepted:
        if write.endpoint_id is None:
            keys.append(None)
            continue
        site = index.names.get(write.endpoint_id, ("?", ""))[0]
        epoch = index.epoch_of(write, screened)
        keys.append((site, epoch))
        if epoch is not None and epoch > newest.get(site, -1):
            newest[site] = epoch
    refused = fence.refused(db.cursor(), newest) if newest else set()
    out = Fenced([], {}, {site: epoch for site, epoch in newest.items() if site not in refused}, {})
    for write, key in zip(screened.accepted, keys, strict=True):
        if key is None:
            out.kept.append(write)
        elif key[1] is not None and key[0] not in refused and key[1] == newest[key[0]]:
            out.kept.append(write)
            out.endpoint_epochs[write.endpoint_id] = key[1]  # type: ignore[index]
        else:
            out.counts[key[0]] = out.counts.get(key[0], 0) + 1
    return out


def _update_endpoints(db: peewee.Database, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """UPDATE endpoint rows that set the same columns with one prepared statement.

    One statement per endpoint was most of the writer's time at 10,000 pinged endpoints
    (a last_data_at Touch per probe): issue 17. When `lease_epoch` is among the columns
    (a cluster's writer), a row whose stored epoch is newer is left alone: each row of
    `rows` then ends with that epoch once more, for the guard.
    """
    sets = ", ".join(f"{column} = {db.param}" for column in columns)
    sql = f"UPDATE endpoint SET {sets} WHERE id = {db.param}"
    if "lease_epoch" in columns:
        sql += f" AND (lease_epoch IS NULL OR lease_epoch <= {db.param})"
    with _wrap_errors:
        cursor = db.cursor()
        if is_sqlite(db):
            cursor.executemany(sql, rows)
        else:
            execute_batch(cursor, sql, rows, page_size=1000)


_EVENT_COLUMNS = "time, site_name, endpoint_name, endpoint_id, level, event, message, exc_type, attempt, generation"
_TOPIC_TAIL = (
    "ON CONFLICT (endpoint_id, topic) DO UPDATE SET "
    "first_seen = MIN(topic.first_seen, excluded.first_seen), "
    "last_seen = MAX(topic.last_seen, excluded.last_seen), "
    '"count" = topic."count" + excluded."count", is_processable = excluded.is_processable'
)
_DEVICE_ONLINE_TAIL = (
    "ON CONFLICT (endpoint_id, name) DO UPDATE SET "
    "last_seen = MAX(device.last_seen, excluded.last_seen), online = excluded.online"
)
_DEVICE_OFFLINE_TAIL = "ON CONFLICT (endpoint_id, name) DO UPDATE SET online = excluded.online"


def apply_writes(
    db: peewee.Database,
    writes: Sequence[Write],
    names: dict[int, tuple[str, str]],
    now: float,
    series: SeriesCache | None = None,
    epochs: dict[int, int] | None = None,
    rollups: DeferredRollups | None = None,
) -> list[tuple[ReadingRecord, bool]]:
    """Apply accepted writes inside the caller's transaction; return each reading with `inserted`.

    `epochs` (a cluster's writer: endpoint -> lease epoch of its writes) stores each
    endpoint row's epoch and never lowers it (`_update_endpoints`).

    `series` is the writer's cache of series ids (its additions are staged: the caller
    commits or discards them with the transaction); None uses a throw-away one.
    `rollups`: the writer's rollup marks (`rollup_state`: buckets still open are stored
    when they close); None upserts every bucket in this transaction.

    Endpoint columns are folded in submission order (so per-endpoint order holds and
    Touch is coalesced), readings/events/parse errors are bulk inserted in order,
    topics and devices are coalesced per key and upserted, alerts go one by one in order.
    A reading whose msg_key is already stored is not inserted; its id() is returned.
    """
    endpoint_updates: dict[int, dict[str, Any]] = {}
    readings: list[ReadingRecord] = []
    events: list[tuple[Any, ...]] = []
    parse_errors: list[tuple[Any, ...]] = []
    topics: dict[tuple[int, str], list[Any]] = {}
    devices: dict[tuple[int, str], list[Any]] = {}
    alerts: list[AlertOpen | AlertResolve] = []
    for w in writes:
        kind = type(w)
        if kind is ReadingRecord:
            assert isinstance(w, ReadingRecord)
            readings.append(w)
        elif kind is EventRecord:
            assert isinstance(w, EventRecord)
            site_name, endpoint_name = w.site_name, w.endpoint_name
            if w.endpoint_id is not None and (site_name is None or endpoint_name is None):
                known = names.get(w.endpoint_id, (None, None))
                site_name = site_name if site_name is not None else known[0]
                endpoint_name = endpoint_name if endpoint_name is not None else known[1]
            events.append(
                (
                    w.time,
                    site_name,
                    endpoint_name,
                    w.endpoint_id,
                    w.level,
                    w.event,
                    w.message,
                    w.exc_type,
                    w.attempt,
                    w.generation,
                )
            )
        elif kind is StateChange:
            assert isinstance(w, StateChange)
            endpoint_updates.setdefault(w.endpoint_id, {}).update(
                state=w.state, since=w.since, reason=w.reason, down_since=w.down_since, last_data_at=w.last_data_at
            )
        elif kind is Touch:
            assert isinstance(w, Touch)
            endpoint_updates.setdefault(w.endpoint_id, {})["last_data_at"] = w.last_data_at
        elif kind is Counters:
            assert isinstance(w, Counters)
            endpoint_updates.setdefault(w.endpoint_id, {}).update(restarts=w.restarts, reconnects=w.reconnects)
        elif kind is GenerationStarted:
            assert isinstance(w, GenerationStarted)
            endpoint_updates.setdefault(w.endpoint_id, {})["generation"] = w.generation
        elif kind is AlertOpen or kind is AlertResolve:
            alerts.append(w)  # type: ignore[arg-type]
        elif kind is TopicSeen:
            assert isinstance(w, TopicSeen)
            seen = topics.get((w.endpoint_id, w.topic))
            if seen is None:
                topics[(w.endpoint_id, w.topic)] = [w.time, w.time, w.count, w.is_processable]
            else:
                seen[0], seen[1] = min(seen[0], w.time), max(seen[1], w.time)
                seen[2] += w.count
                seen[3] = w.is_processable
        elif kind is DeviceSeen:
            assert isinstance(w, DeviceSeen)
            dev = devices.setdefault((w.endpoint_id, w.device), [w.time, None, w.online])
            dev[0] = min(dev[0], w.time)
            if w.online:
                dev[1] = w.time if dev[1] is None else max(dev[1], w.time)
            dev[2] = w.online
        elif kind is ParseErrorRecord:
            assert isinstance(w, ParseErrorRecord)
            parse_errors.append((w.endpoint_id, w.time, w.topic, w.parser, w.error, w.sample[:SAMPLE_MAX_CHARS]))
        else:
            raise TypeError(f"not a storage write: {w!r}")

    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for endpoint_id, values in endpoint_updates.items():
        values["updated_at"] = now
        epoch = None if epochs is None else epochs.get(endpoint_id)
        if epoch is None:
            by_columns.setdefault(tuple(values), []).append((*values.values(), endpoint_id))
        else:
            values["lease_epoch"] = epoch
            by_columns.setdefault(tuple(values), []).append((*values.values(), endpoint_id, epoch))
    for columns, rows in by_columns.items():  # e.g. every Touch of the batch in one statement
        _update_endpoints(db, columns, rows)
    flags = insert_readings(
        db, series if series is not None else SeriesCache(), readings, rollups, stage=is_sqlite(db)
    )
    stored = list(zip(readings, flags, strict=True))
    insert_rows(db, "event", _EVENT_COLUMNS, 10, events)
    insert_rows(db, "parse_error", "endpoint_id, time, topic, parser, error, sample", 6, parse_errors)
    if topics:
        rows = [(eid, topic, v[0], v[1], v[2], v[3]) for (eid, topic), v in topics.items()]
        insert_rows(
            db,
            "topic",
            'endpoint_id, topic, first_seen, last_seen, "count", is_processable',
            6,
            rows,
            pg_minmax(db, _TOPIC_TAIL),
        )
    if devices:
        # last_seen moves only with an online message; the flag is the last one sent
        cols = "endpoint_id, name, first_seen, last_seen, online"
        seen = [(eid, name, v[0], v[1], v[2]) for (eid, name), v in devices.items() if v[1] is not None]
        unseen = [(eid, name, v[0], v[0], v[2]) for (eid, name), v in devices.items() if v[1] is None]
        insert_rows(db, "device", cols, 5, seen, pg_minmax(db, _DEVICE_ONLINE_TAIL))
        insert_rows(db, "device", cols, 5, unseen, _DEVICE_OFFLINE_TAIL)
    p = db.param
    for alert in alerts:
        if type(alert) is AlertOpen:
            assert isinstance(alert, AlertOpen)
            db.execute_sql(
                "INSERT INTO alert (endpoint_id, condition, subject, severity, message, triggered_at) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
                "ON CONFLICT (endpoint_id, condition, subject) WHERE resolved_at IS NULL DO NOTHING",
                clean((alert.endpoint_id, alert.condition, alert.subject, alert.severity, alert.message, alert.time)),
            )
        else:
            db.execute_sql(
                f"UPDATE alert SET resolved_at = {p} WHERE endpoint_id = {p} AND condition = {p} "
                f"AND subject = {p} AND resolved_at IS NULL",
                (alert.time, alert.endpoint_id, alert.condition, alert.subject),
            )
    return stored
