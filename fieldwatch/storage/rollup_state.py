"""Rollup buckets stored once they closed, by a single writer (issue 17).

Per tier a watermark, `rollup_mark.complete_before` (seconds): every bucket that starts
before it is complete in the tier's table, and the table holds no row at or after it.
Readers (`readings._bucket_page`) take buckets before the mark from the tier's table and
the rest from the finer sources (1-hour buckets: `rollup_1m` below its own mark, then the
raw rows; 1-minute buckets: the raw rows), so a bucket that is still open need not be
stored at all, and every answer counts exactly the raw readings.

`DeferredRollups` is the writer's side. It keeps nothing but the marks in memory:

- a reading in an open bucket costs the writer nothing beyond its raw row; a late reading
  (its bucket before its tier's mark) is upserted in the reading's own transaction (a
  delta merge: exact), into the 1-minute tier, and into the 1-hour tier only when that
  bucket closed too (an open hour gets it from the 1-minute row);
- `flush` (its own transaction, after a commit, once a minute or hour closed plus a grace)
  has the database aggregate the closed buckets from the committed rows, with per-series
  index seeks (1-minute from the raw rows, then 1-hour from the 1-minute rows it just
  stored), INSERTs them and advances the marks in that same transaction. Folding every
  reading into buckets in memory instead cost a third of the writer's time at 10,000
  pinged endpoints. A crash (kill -9) or a failed flush loses nothing: the rows are there.
  Retention never deletes raw rows at/after the minute mark nor 1-minute rows at/after the
  hour mark (`retention.py`), so what a flush reads is still there;
- `recover` (at writer start, and after a failed flush) reads the marks.

`ALL_COMPLETE` as a mark: the tier is written per transaction (a cluster's writers, where
several instances write and none could tell from its own marks whether another closed a
bucket meanwhile, so a late reading would be missed; and a database no
single writer has lowered the marks of, e.g. right after migration 5). A single writer
lowers such a mark at start, to the current minute/hour when the tier's rows there agree
with the finer sources (they do unless retention already deleted finer rows), else to the
next one; a clustered writer stores whatever is open and raises the marks to ALL_COMPLETE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import peewee

from fieldwatch.storage.db import is_sqlite, write_transaction
from fieldwatch.storage.recent import move_recent
from fieldwatch.storage.rollups import TIERS, Cell, RollupBatch, fold, partials_sql
from fieldwatch.storage.sqlbits import int_list

__all__ = ["ALL_COMPLETE", "GRACE_S", "DeferredRollups", "hold_marks", "read_marks"]

logger = logging.getLogger(__name__)

#: A tier's mark when every bucket is complete in its table (no deferral).
ALL_COMPLETE = 1 << 50
#: A bucket is stored this long after its end (readings arrive a little after their time).
GRACE_S = 5.0

_WIDTHS = tuple(tier.seconds for tier in TIERS)
_CHUNK = 500


def read_marks(db: peewee.Database, *, lock: bool = False) -> list[int]:
    """Each tier's `complete_before`, finest first (ALL_COMPLETE when it has no row).

    `lock` (PostgreSQL): FOR UPDATE, held to the end of the caller's transaction.
    """
    sql = "SELECT tier, complete_before FROM rollup_mark"
    if lock and not is_sqlite(db):
        sql += " FOR UPDATE"
    found = {str(tier): int(mark) for tier, mark in db.execute_sql(sql).fetchall()}
    return [found.get(tier.table, ALL_COMPLETE) for tier in TIERS]


def _write_marks(db: peewee.Database, marks: list[int]) -> None:
    p = db.param
    for tier, mark in zip(TIERS, marks, strict=True):
        db.execute_sql(f"UPDATE rollup_mark SET complete_before = {p} WHERE tier = {p}", (mark, tier.table))


def _chunks(db: peewee.Database) -> tuple[list[str], dict[int, int]]:
    """Every series id as SQL lists of _CHUNK ids, and series id -> companion series id."""
    rows = db.execute_sql("SELECT id, aux_id FROM series ORDER BY id").fetchall()
    aux_of = {int(r[0]): int(r[1]) for r in rows if r[1] is not None}
    return _id_lists([int(r[0]) for r in rows]), aux_of


def _id_lists(ids: list[int]) -> list[str]:
    """`ids` as SQL lists of at most _CHUNK ids each."""
    return [int_list(ids[i : i + _CHUNK]) for i in range(0, len(ids), _CHUNK)]


def _partials(
    db: peewee.Database, chunks: list[str], aux_of: dict[int, int], source: str, lo: int, hi: int, tier_i: int
) -> Iterator[tuple[tuple[int, int, int], Cell]]:
    """(key, aggregate) of tier `tier_i` from `source` (a rollup table, or raw: both columns)
    over [lo, hi) seconds, chunk by chunk (index seeks on (series_id, time))."""
    if lo >= hi:
        return
    width = _WIDTHS[tier_i]
    passes = [(source if source != "raw" else "value", chunks)]
    if source == "raw":  # companion values: only series that have a companion carry them
        passes.append(("aux", _id_lists(sorted(aux_of))))
    pg_last = not is_sqlite(db)
    for src, id_lists in passes:
        for ids in id_lists:
            sql = partials_sql(src, ids, lo, hi, width, pg_last=pg_last)
            for sid, b, mn, mx, sm, cnt, lt, lst in db.execute_sql(sql).fetchall():
                out = aux_of.get(int(sid)) if src == "aux" else int(sid)
                if out is not None:
                    yield (tier_i, out, int(b)), [mn, mx, sm, int(cnt), lst, int(lt)]


def _delete_from(db: peewee.Database, chunks: list[str], tier_i: int, bucket: int) -> None:
    if bucket >= ALL_COMPLETE:
        return
    for ids in chunks:
        db.execute_sql(f"DELETE FROM {TIERS[tier_i].table} WHERE series_id IN {ids} AND bucket >= {int(bucket)}")


def hold_marks(db: peewee.Database) -> None:
    """PostgreSQL: share-lock the marks to the end of the caller's transaction, so a batch and a
    successor writer's `recover` (FOR UPDATE) never overlap. SQLite: BEGIN IMMEDIATE does it."""
    if not is_sqlite(db):
        db.execute_sql("SELECT complete_before FROM rollup_mark FOR SHARE")


class DeferredRollups:
    """The writer's marks; buckets close from the stored rows (module doc). `defer=False`: a
    cluster's writer (every bucket upserted per transaction)."""

    def __init__(self, *, defer: bool = True, grace_s: float = GRACE_S) -> None:
        self.defer = defer
        self.grace_s = grace_s
        self.marks = [ALL_COMPLETE] * len(TIERS)
        self.loaded = False  # False: `recover` must run before the next write

    @property
    def open_from_ms(self) -> int:
        """Readings at/after this time (ms) are in open buckets of every tier: `add` skips them."""
        return self.marks[0] * 1000

    # -- per transaction -------------------------------------------------------------

    def add(self, direct: RollupBatch, series_id: int, t_ms: int, value: float | None) -> None:
        """Count a reading whose bucket may have closed (the caller skips those at/after
        `open_from_ms`): into `direct`, upserted by the caller's transaction, in each tier
        whose bucket of it closed. An open hour gets it from the 1-minute row when it closes."""
        if value is None or value - value != 0.0:  # None, NaN or an infinity
            return
        m0, m1 = self.marks
        b0 = (t_ms // 60_000) * 60
        if b0 >= m0:  # open in both tiers: counted from the raw row when its minute closes
            return
        direct.add_to((0, series_id, b0), t_ms, value)
        b1 = (t_ms // 3_600_000) * 3600
        if b1 < m1:
            direct.add_to((1, series_id, b1), t_ms, value)

    # -- closing buckets -------------------------------------------------------------

    def _targets(self, now: float) -> list[int]:
        """Per tier: the mark `now` allows (every bucket before it ended `grace_s` ago)."""
        out = []
        for width, mark in zip(_WIDTHS, self.marks, strict=True):
            target = int((now - self.grace_s) // width) * width
            out.append(max(mark, target) if mark < ALL_COMPLETE else mark)
        return out

    def due(self, now: float) -> bool:
        """Whether a flush at `now` would store buckets or move a mark."""
        return self.loaded and self.defer and self._targets(now) != self.marks

    def flush(self, db: peewee.Database, now: float) -> int:
        """In a transaction of its own: store the buckets that closed by `now`, aggregated by
        the database from the committed rows (1-minute from raw rows, then 1-hour from the
        1-minute rows), and advance the marks. Returns the rows stored. On any error nothing
        changed in memory, but the caller should `invalidate` (a commit may have failed after
        reaching the disk)."""
        targets = self._targets(now)
        (m0, m1), (t0, t1) = self.marks, targets
        stored = 0
        with write_transaction(db):
            if is_sqlite(db):
                move_recent(db)  # the closed buckets are read from reading_raw alone
            chunks, aux_of = _chunks(db)
            for tier_i, source, lo, hi in ((0, "raw", m0, t0), (1, TIERS[0].table, m1, t1)):
                closed = RollupBatch()
                for key, cell in _partials(db, chunks, aux_of, source, lo, hi, tier_i):
                    fold(closed.cells, key, cell)
                stored += len(closed.cells)
                closed.flush(db, upsert=False)  # the hour reads the minutes stored just before
            _write_marks(db, targets)
        self.marks = targets
        return stored

    def invalidate(self) -> None:
        """What is in memory may disagree with the database: `recover` before the next write."""
        self.loaded = False

    # -- start-up ----------------------------------------------------------------------

    def recover(self, db: peewee.Database, now: float) -> None:
        """Take the marks from the database (lowering those of a tier complete everywhere), in
        one transaction; a cluster's writer stores what is open and raises them (module doc)."""
        with write_transaction(db):
            if is_sqlite(db):
                move_recent(db)  # rows staged before a crash: read from reading_raw below
            marks = read_marks(db, lock=True)
            if not self.defer and all(m >= ALL_COMPLETE for m in marks):
                self._loaded(marks)
                return
            chunks, aux_of = _chunks(db)
            new = list(marks)
            if self.defer:
                for i in range(len(TIERS)):
                    if marks[i] >= ALL_COMPLETE:
                        new[i] = self._lowered(db, chunks, aux_of, i, new, now)
            for i, mark in enumerate(new):
                _delete_from(db, chunks, i, mark)  # none unless written by hand: a bucket at/after
            if not self.defer:  # a cluster's writer: store what was open, everything complete
                self._rebuilt(db, chunks, aux_of, new).flush(db, upsert=False)
                new = [ALL_COMPLETE] * len(TIERS)
            _write_marks(db, new)
        logger.info(
            "rollups: %s", ", ".join(f"{t.table} complete before {m}" for t, m in zip(TIERS, new, strict=True))
        )
        self._loaded(new)

    def _loaded(self, marks: list[int]) -> None:
        self.marks, self.loaded = marks, True

    @staticmethod
    def _rebuilt(db: peewee.Database, chunks: list[str], aux_of: dict[int, int], marks: list[int]) -> RollupBatch:
        """The open cells under `marks`: 1-minute from raw rows; 1-hour from 1-minute rows
        below the minute mark and raw rows from there on."""
        out = RollupBatch()
        m0, m1 = marks
        parts = [
            _partials(db, chunks, aux_of, "raw", m0, ALL_COMPLETE, 0),
            _partials(db, chunks, aux_of, TIERS[0].table, m1, m0, 1),
            _partials(db, chunks, aux_of, "raw", max(m0, m1), ALL_COMPLETE, 1),
        ]
        for part in parts:
            for key, cell in part:
                fold(out.cells, key, cell)
        return out

    @staticmethod
    def _lowered(
        db: peewee.Database, chunks: list[str], aux_of: dict[int, int], i: int, marks: list[int], now: float
    ) -> int:
        """The mark tier `i` (complete everywhere) can be lowered to: the start of the
        current bucket if its finer sources hold everything its rows there count, else
        the next bucket (then the current one is still written per transaction)."""
        width = _WIDTHS[i]
        here = int(now // width) * width
        stored = {k: int(c[3]) for k, c in _partials(db, chunks, aux_of, TIERS[i].table, here, ALL_COMPLETE, i)}
        finer: dict[tuple[int, int, int], Cell] = {}
        if i == 0:
            sources = [_partials(db, chunks, aux_of, "raw", here, ALL_COMPLETE, 0)]
        else:
            m0 = marks[0]
            sources = [
                _partials(db, chunks, aux_of, TIERS[0].table, here, m0, 1),
                _partials(db, chunks, aux_of, "raw", max(m0, here), ALL_COMPLETE, 1),
            ]
        for source in sources:
            for key, cell in source:
                fold(finer, key, cell)
        if stored == {k: int(c[3]) for k, c in finer.items()}:
            return here
        logger.warning(
            "rollups: %s rows from %d on disagree with the finer rows (retention deleted some?): "
            "deferring only from the next bucket",
            TIERS[i].table,
            here,
        )
        return here + width
