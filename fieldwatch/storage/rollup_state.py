"""Open rollup buckets kept in memory by a single writer, stored once they closed (issue 17).

Per tier a watermark, `rollup_mark.complete_before` (seconds): every bucket that starts
before it is complete in the tier's table, and the table holds no row at or after it.
Readers (`readings._bucket_page`) take buckets before the mark from the tier's table and
the rest from the finer sources (1-hour buckets: `rollup_1m` below its own mark, then the
raw rows; 1-minute buckets: the raw rows), so a bucket that is still open need not be
stored at all, and every answer counts exactly the raw readings.

`DeferredRollups` is the writer's side:

- a reading in a bucket at/after its tier's mark is folded into `open` (in memory), via a
  per-transaction stage merged only once the transaction committed (a rolled-back batch is
  retried with the same writes and must not count twice); a late reading (its bucket
  before the mark) is upserted in its own transaction as before (a delta merge: exact);
- `flush` (its own transaction, after a commit, once a minute or hour closed plus a grace)
  INSERTs the closed cells and advances the marks in that same transaction;
- `recover` (at writer start, before any other write, and after a failed flush) rebuilds
  `open` from what is committed: rollup rows at/after a mark are deleted and recomputed
  from the raw rows (and, for the hour, the 1-minute rows below the minute mark), with
  per-series index seeks. A crash (kill -9) loses `open` but no raw row, so nothing.
  Retention never deletes raw rows at/after the minute mark nor 1-minute rows at/after the
  hour mark (`retention.py`), so what recovery needs is still there.

`ALL_COMPLETE` as a mark: the tier is written per transaction (a cluster's writers, where a
site moves between instances and a dead owner's memory would be lost; and a database no
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
    ids = [int(r[0]) for r in rows]
    aux_of = {int(r[0]): int(r[1]) for r in rows if r[1] is not None}
    return [int_list(ids[i : i + _CHUNK]) for i in range(0, len(ids), _CHUNK)], aux_of


def _partials(
    db: peewee.Database, chunks: list[str], aux_of: dict[int, int], source: str, lo: int, hi: int, tier_i: int
) -> Iterator[tuple[tuple[int, int, int], Cell]]:
    """(key, aggregate) of tier `tier_i` from `source` (a rollup table, or raw: both columns)
    over [lo, hi) seconds, chunk by chunk (index seeks on (series_id, time))."""
    if lo >= hi:
        return
    width = _WIDTHS[tier_i]
    sources = ("value", "aux") if source == "raw" else (source,)
    for ids in chunks:
        for src in sources:
            for sid, b, mn, mx, sm, cnt, lt, lst in db.execute_sql(partials_sql(src, ids, lo, hi, width)).fetchall():
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
    """The writer's open buckets and marks (module doc). `defer=False`: a cluster's writer."""

    def __init__(self, *, defer: bool = True, grace_s: float = GRACE_S) -> None:
        self.defer = defer
        self.grace_s = grace_s
        self.marks = [ALL_COMPLETE] * len(TIERS)
        self._open = RollupBatch()  # aggregated open cells, (tier, series, bucket)
        #: committed readings (series, t_ms, value) open in both tiers, not yet aggregated:
        #: folded into `_open` when a flush is due (a list append per reading on the hot path)
        self._pending: list[tuple[int, int, float]] = []
        self.loaded = False  # False: `recover` must run before the next write
        self._staged: list[tuple[int, int, float]] = []  # this transaction's, open in both tiers
        self._staged_cells: list[tuple[tuple[int, int, int], int, float]] = []  # open in one tier only

    @property
    def open(self) -> RollupBatch:
        """Every open cell (the pending readings aggregated first)."""
        self._aggregate()
        return self._open

    # -- per transaction -------------------------------------------------------------

    def add(self, direct: RollupBatch, series_id: int, t_ms: int, value: float | None) -> None:
        """Count a reading: into `direct` (upserted by the caller's transaction) for a bucket
        before its tier's mark, else into the stage of this transaction."""
        if value is None or value - value != 0.0:  # None, NaN or an infinity
            return
        m0, m1 = self.marks
        b0 = (t_ms // 60_000) * 60
        b1 = (t_ms // 3_600_000) * 3600
        if b0 >= m0 and b1 >= m1:  # the hot path of the writer: one tuple appended
            self._staged.append((series_id, t_ms, value))
            return
        for i, b, m in ((0, b0, m0), (1, b1, m1)):  # late for one tier or both
            if b < m:
                direct.add_to((i, series_id, b), t_ms, value)
            else:
                self._staged_cells.append(((i, series_id, b), t_ms, value))

    def commit(self) -> None:
        """The transaction committed: its staged readings join the open buckets."""
        self._pending += self._staged
        self._staged.clear()
        if self._staged_cells:
            self._aggregate()  # keeps the order of readings at one millisecond ("last")
            add_to = self._open.add_to
            for key, t_ms, value in self._staged_cells:
                add_to(key, t_ms, value)
            self._staged_cells.clear()

    def discard(self) -> None:
        """The transaction rolled back: forget its staged readings."""
        self._staged.clear()
        self._staged_cells.clear()

    def _aggregate(self) -> None:
        """Fold the pending readings into the open cells of both tiers."""
        pending = self._pending
        if not pending:
            return
        minutes = RollupBatch()  # the 1-minute cells of these readings, then folded into both tiers
        add_to = minutes.add_to
        for series_id, t_ms, value in pending:
            add_to((0, series_id, (t_ms // 60_000) * 60), t_ms, value)
        pending.clear()
        cells = self._open.cells
        for (_, series_id, minute), part in minutes.cells.items():
            fold(cells, (0, series_id, minute), part)
            fold(cells, (1, series_id, (minute // 3600) * 3600), part)

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
        """In a transaction of its own: INSERT the cells of buckets that closed by `now` and
        advance the marks. Returns the rows stored. On any error nothing changed in memory,
        but the caller should `invalidate` (a commit may have failed after reaching the disk)."""
        targets = self._targets(now)
        self._aggregate()
        closed = RollupBatch({k: c for k, c in self._open.cells.items() if k[2] < targets[k[0]]})
        keys = list(closed.cells)
        with write_transaction(db):
            closed.flush(db, upsert=False)
            _write_marks(db, targets)
        for key in keys:
            del self._open.cells[key]
        self.marks = targets
        return len(keys)

    def invalidate(self) -> None:
        """What is in memory may disagree with the database: `recover` before the next write."""
        self.loaded = False
        self.discard()

    # -- start-up ----------------------------------------------------------------------

    def recover(self, db: peewee.Database, now: float) -> None:
        """Rebuild the open buckets from what is committed, in one transaction (module doc)."""
        with write_transaction(db):
            marks = read_marks(db, lock=True)
            if not self.defer and all(m >= ALL_COMPLETE for m in marks):
                self._loaded(marks, RollupBatch())
                return
            chunks, aux_of = _chunks(db)
            new = list(marks)
            if self.defer:
                for i in range(len(TIERS)):
                    if marks[i] >= ALL_COMPLETE:
                        new[i] = self._lowered(db, chunks, aux_of, i, new, now)
            open_ = self._rebuilt(db, chunks, aux_of, new)
            for i, mark in enumerate(new):
                _delete_from(db, chunks, i, mark)
            if not self.defer:  # a cluster's writer: store what was open, everything complete
                open_.flush(db, upsert=False)
                new = [ALL_COMPLETE] * len(TIERS)
            _write_marks(db, new)
        logger.info(
            "rollups: %s; %d open buckets rebuilt from the stored readings",
            ", ".join(f"{t.table} complete before {m}" for t, m in zip(TIERS, new, strict=True)),
            len(open_.cells),
        )
        self._loaded(new, open_)

    def _loaded(self, marks: list[int], open_: RollupBatch) -> None:
        self.marks, self._open, self.loaded = marks, open_, True
        self._pending.clear()
        self.discard()

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
