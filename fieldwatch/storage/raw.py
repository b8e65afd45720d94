"""Storing raw readings in the compact v2 schema (the writer's side).

A reading is one row of `reading_raw`, keyed by (series_id, t, seq): the series
(endpoint, name, device) is an integer, `t` is the reading's time in integer
milliseconds (its source time when it has one, else when it was received), and `seq`
tells apart readings of one series at the same millisecond (0 for nearly all). `lag`
is received minus source time (NULL: no source time), `quality` is NULL when "Good",
`aux` holds a companion value (a probe's loss next to its RTT) whose own series
is `series.aux_id`. Duplicate suppression keys live in `reading_key`, per endpoint.

`SeriesCache` keeps series ids and each series' newest (t, seq) across transactions;
what a transaction adds is staged and kept only once it committed (`commit`), so a
rolled-back batch leaves no id behind that the database does not have.

On SQLite the writer stores new rows in `reading_recent` first (`stage=True`): a table
without a key or index, so a commit's rows land on a page or two at its end. Once a
minute (`MOVE_S`, or at `MOVE_ROWS` rows, and before the writer's first write) they are
moved into `reading_raw` sorted by series and time (`move_recent`): each series' page is
then written once for several rows. Written straight into `reading_raw`, each row of a
commit dirtied a page of its own once every series had its own (10 us a row against 3,
issue 17). Readers on SQLite read both tables (`readings.py`, the `reading` view); the
writer moves the rows before it aggregates closed rollup buckets (`rollup_state.py`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee

from fieldwatch.storage.recent import MOVE_ROWS, MOVE_S, RAW_COLUMNS, RECENT, move_recent
from fieldwatch.storage.rollup_state import DeferredRollups
from fieldwatch.storage.rollups import RollupBatch
from fieldwatch.storage.sqlbits import insert_rows
from fieldwatch.storage.writes import ReadingRecord

__all__ = ["SeriesCache", "insert_readings", "to_ms"]

_RAW_COLUMNS = RAW_COLUMNS
_KEY_CHUNK = 500

SeriesKey = tuple[int, str, str]


def to_ms(seconds: float) -> int:
    """Unix seconds to integer milliseconds (ValueError for NaN or infinity)."""
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite time: {seconds!r}")
    return round(seconds * 1000.0)


@dataclass(slots=True)
class SeriesCache:
    """Series ids and newest (t, seq) per series; a transaction's additions are staged."""

    ids: dict[SeriesKey, tuple[int, int | None]] = field(default_factory=dict)
    last: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: (series id, t) -> the highest seq given at it to a row that may still be in reading_recent
    staged: dict[tuple[int, int], int] = field(default_factory=dict)
    moved_at: float | None = None  # monotonic time of the last committed move (None: none yet)
    _ids: dict[SeriesKey, tuple[int, int | None]] = field(default_factory=dict)
    _last: dict[int, tuple[int, int]] = field(default_factory=dict)
    _taken: dict[tuple[int, int], int] = field(default_factory=dict)
    _moved_at: float | None = None  # a move in this transaction
    _staging: bool = False  # this transaction staged rows

    def commit(self) -> None:
        """The transaction committed: keep what it added."""
        self.ids.update(self._ids)
        self.last.update(self._last)
        if self._moved_at is not None:
            self.moved_at = self._moved_at
            self.staged.clear()
        if self._staging:
            self.staged.update(self._taken)
        self.discard()

    def discard(self) -> None:
        """The transaction rolled back: forget what it added."""
        self._ids.clear()
        self._last.clear()
        self._taken.clear()
        self._moved_at = None
        self._staging = False

    def moved(self) -> None:
        """Another committed transaction of the writer (a rollup flush, recovery) moved every staged
        row: the next move is a minute away (a second, offset move would carry fewer rows a series)."""
        self.moved_at = time.monotonic()
        self.staged.clear()

    def move_due(self, now: float) -> bool:
        """Whether the staged rows should be moved before more are staged."""
        if self._moved_at is not None:
            return False
        return self.moved_at is None or now - self.moved_at >= MOVE_S or len(self.staged) >= MOVE_ROWS

    def forget_endpoints(self, endpoint_ids: Iterable[int]) -> None:
        """Drop the series of deleted endpoints (their rows went with them)."""
        gone = set(endpoint_ids)
        if not gone:
            return
        dropped = {sid for key, (sid, _aux) in self.ids.items() if key[0] in gone}
        self.ids = {key: v for key, v in self.ids.items() if key[0] not in gone}
        self.last = {sid: v for sid, v in self.last.items() if sid not in dropped}

    def series(
        self, db: peewee.Database, endpoint_id: int, name: str, device: str, aux_name: str | None
    ) -> tuple[int, int | None]:
        """(series id, aux series id) of a reading, creating the series on first use."""
        key = (endpoint_id, name, device)
        found = self._ids.get(key) or self.ids.get(key)
        if found is not None and (aux_name is None or found[1] is not None):
            return found
        aux_id = None if aux_name is None else self.series(db, endpoint_id, aux_name, device, None)[0]
        p = db.param
        row = db.execute_sql(
            f"SELECT id, aux_id FROM series WHERE endpoint_id = {p} AND name = {p} AND device = {p}", key
        ).fetchone()
        if row is None:
            row = db.execute_sql(
                f"INSERT INTO series (endpoint_id, name, device, aux_id) VALUES ({p}, {p}, {p}, {p}) RETURNING id, aux_id",
                (*key, aux_id),
            ).fetchone()
        elif aux_id is not None and row[1] is None:
            db.execute_sql(f"UPDATE series SET aux_id = {p} WHERE id = {p}", (aux_id, row[0]))
            row = (row[0], aux_id)
        found = (int(row[0]), None if row[1] is None else int(row[1]))
        self._ids[key] = found
        return found

    def next_seq(self, db: peewee.Database, series_id: int, t: int) -> int:
        """The `seq` that makes (series_id, t, seq) new: 0 unless `t` is already taken."""
        p = db.param
        newest = self._last.get(series_id) or self.last.get(series_id)
        if newest is None:
            row = db.execute_sql(
                f"SELECT t, seq FROM reading_raw WHERE series_id = {p} ORDER BY t DESC, seq DESC LIMIT 1", (series_id,)
            ).fetchone()
            newest = (int(row[0]), int(row[1])) if row else (-(2**62), 0)
        if t > newest[0]:
            seq = 0
        elif t == newest[0]:
            seq = newest[1] + 1
        elif (series_id, t) in self._taken:  # late, at a millisecond this batch already used
            seq = self._taken[(series_id, t)] + 1
        else:  # a late reading: look at its millisecond in the table (rare) and among the staged rows
            row = db.execute_sql(
                f"SELECT MAX(seq) FROM reading_raw WHERE series_id = {p} AND t = {p}", (series_id, t)
            ).fetchone()
            seq = 0 if row is None or row[0] is None else int(row[0]) + 1
            staged = self.staged.get((series_id, t))
            if staged is not None:
                seq = max(seq, staged + 1)
        self._taken[(series_id, t)] = seq  # rows of this batch are inserted after all are numbered
        if t >= newest[0]:
            self._last[series_id] = (t, seq)
        return seq


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: replace it (as `sqlbits.clean` does for whole rows)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _new_keys(db: peewee.Database, records: Sequence[ReadingRecord]) -> set[int]:
    """Indexes of records whose msg_key is new for their endpoint (also within the batch)."""
    wanted: dict[int, dict[str, int]] = {}
    for i, r in enumerate(records):
        if r.msg_key is not None:
            per_endpoint = wanted.setdefault(r.endpoint_id, {})
            per_endpoint.setdefault(r.msg_key, i)  # a repeat inside the batch is a duplicate
    p = db.param
    new: set[int] = set()
    for endpoint_id, keys in wanted.items():
        names = list(keys)
        existing: set[str] = set()
        for start in range(0, len(names), _KEY_CHUNK):
            chunk = names[start : start + _KEY_CHUNK]
            marks = ", ".join([p] * len(chunk))
            cursor = db.execute_sql(
                f"SELECT msg_key FROM reading_key WHERE endpoint_id = {p} AND msg_key IN ({marks})",
                (endpoint_id, *chunk),
            )
            existing.update(row[0] for row in cursor.fetchall())
        new.update(i for key, i in keys.items() if key not in existing)
    return new


def insert_readings(
    db: peewee.Database,
    cache: SeriesCache,
    records: Sequence[ReadingRecord],
    deferred: DeferredRollups | None = None,
    *,
    stage: bool = False,
) -> list[bool]:
    """Insert readings and fold them into the rollups, inside the caller's transaction.

    With `deferred` (the writer's marks) only buckets before their tier's mark are upserted
    here; the others are aggregated from the rows when they close (`DeferredRollups.flush`).
    Without: every bucket is upserted (marks ALL_COMPLETE).
    `stage` (SQLite, schema 6 on): the rows go to reading_recent (module doc), moved first
    when due.
    Returns, per record, whether it was inserted (False: its msg_key was already stored).
    """
    if not records:
        return []
    if stage:
        now = time.monotonic()
        if cache.move_due(now):
            move_recent(db)
            cache._moved_at = now
        cache._staging = True
    new_keys = _new_keys(db, records)
    inserted: list[bool] = []
    raw: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    rollups = RollupBatch()
    open_from = -1 if deferred is None else deferred.open_from_ms  # at/after: counted when it closes
    for i, r in enumerate(records):
        if r.msg_key is not None and i not in new_keys:
            inserted.append(False)
            continue
        inserted.append(True)
        received = to_ms(r.received_at)
        t = received if r.source_time is None else to_ms(r.source_time)
        lag = None if r.source_time is None else received - t
        series_id, aux_id = cache.series(db, r.endpoint_id, r.name, r.device or "", r.aux_name)
        seq = cache.next_seq(db, series_id, t)
        quality = None if r.quality == "Good" else _text(r.quality)
        text = None if r.value_text is None else _text(r.value_text)
        raw.append((series_id, t, seq, r.value_num, r.aux_num, lag, quality, text))
        if r.msg_key is not None:
            keys.append((r.endpoint_id, r.msg_key, received))
        if deferred is None:
            rollups.add(series_id, t, r.value_num)
            if aux_id is not None:
                rollups.add(aux_id, t, r.aux_num)
        elif t < open_from:  # a late reading: its minute (and maybe its hour) closed
            deferred.add(rollups, series_id, t, r.value_num)
            if aux_id is not None:
                deferred.add(rollups, aux_id, t, r.aux_num)
    insert_rows(db, "reading_key", "endpoint_id, msg_key, t", 3, keys)
    insert_rows(db, RECENT if stage else "reading_raw", _RAW_COLUMNS, 8, raw, cleaned=True)
    rollups.flush(db)
    return inserted
