"""Retention tiers: raw readings, 1-minute and 1-hour rollups, events, each kept its own time.

A pass deletes what expired, one short transaction ("chunk") at a time, so the writer
is never held up for longer than one chunk (SQLite has a single write lock). Its cost
follows what expires, not what is kept:

- readings and rollups are clustered by (series, time): a chunk deletes one time slice
  `[floor, floor + width)` of every series with one index seek per series; the slice
  width adapts so a chunk deletes about `chunk_rows` rows (a backlog after a long
  stop is worked off in many small chunks, never one big one);
- events, parse errors, resolved alerts and duplicate keys go oldest first through
  their time index, `chunk_rows` at a time.

On PostgreSQL the same chunked deletes run (no table partitioning yet): expired rows
leave dead tuples for autovacuum rather than dropped partitions.

Whatever the tiers say, raw rows at/after the 1-minute mark and 1-minute rows at/after
the 1-hour mark (`rollup_state`: buckets still open in the writer's memory, answered and
rebuilt from those rows) are kept: each chunk reads the mark in its own transaction
(FOR SHARE on PostgreSQL, so a writer lowering it waits for the chunk, or the chunk for it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import peewee

from fieldwatch.config.model import RetentionConfig
from fieldwatch.storage.db import is_sqlite, write_transaction
from fieldwatch.storage.recent import RECENT
from fieldwatch.storage.rollup_state import ALL_COMPLETE
from fieldwatch.storage.sqlbits import int_list

__all__ = ["DAY_S", "DEFAULT_CHUNK_ROWS", "Retention", "Target", "TARGETS", "Pass", "purge"]

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
DEFAULT_CHUNK_ROWS = 1000


#: How long each tier is kept, in days (fractions allowed; 0 or less: kept for ever).
Retention = RetentionConfig


@dataclass(frozen=True, slots=True)
class Target:
    """A table under retention: its time column in `unit`s per second, and its tier."""

    table: str
    column: str
    tier: str  # the Retention field
    unit: int = 1
    width_s: int = 0  # a rollup bucket expires once its whole width is older than the cutoff
    key: str | None = "id"  # row key for oldest-first deletes; None: clustered by (series_id, column)


TARGETS: tuple[Target, ...] = (
    Target("reading_raw", "t", "raw_days", unit=1000, key=None),
    Target("reading_key", "t", "raw_days", unit=1000, key="endpoint_id, msg_key"),
    Target("rollup_1m", "bucket", "minute_days", width_s=60, key=None),
    Target("rollup_1h", "bucket", "hour_days", width_s=3600, key=None),
    Target("event", "time", "events_days"),
    Target("parse_error", "time", "events_days"),
    Target("alert", "resolved_at", "events_days"),
)


@dataclass(slots=True)
class _Progress:
    floor: int | None = None
    width: int = 0
    series: list[int] | None = None
    deleted: int = 0
    recent_done: bool = False  # reading_raw: the staged rows were purged (SQLite)


@dataclass(slots=True)
class Pass:
    """One retention pass at time `now`: call `step` until it returns True."""

    retention: Retention
    now: float
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    index: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    progress: _Progress = field(default_factory=_Progress)

    def cutoff(self, target: Target) -> int | None:
        """The value of `target.column` below which rows are expired (None: kept for ever)."""
        days = float(getattr(self.retention, target.tier))
        if days <= 0:
            return None
        return int((self.now - days * DAY_S - target.width_s) * target.unit)

    def step(self, db: peewee.Database) -> bool:
        """Delete one chunk (one transaction); True when the pass is complete."""
        while self.index < len(TARGETS):
            target = TARGETS[self.index]
            cutoff = self.cutoff(target)
            if cutoff is not None and target.table in db.get_tables():
                if target.table == "reading_raw" and is_sqlite(db) and not self.progress.recent_done:
                    self.progress.deleted += _recent_purge(db, cutoff)  # first: a failure leaves no progress
                    self.progress.recent_done = True
                done = (
                    _series_chunk(db, target, cutoff, self)
                    if target.key is None
                    else _rows_chunk(db, target, cutoff, self)
                )
                if not done:
                    return False
            self.deleted[target.table] = self.progress.deleted
            self.progress = _Progress()
            self.index += 1
        return True


def _rows_chunk(db: peewee.Database, target: Target, cutoff: int, run: Pass) -> bool:
    p, t, c, k = db.param, target.table, target.column, target.key
    sql = f"DELETE FROM {t} WHERE ({k}) IN (SELECT {k} FROM {t} WHERE {c} < {p} ORDER BY {c} LIMIT {p})"
    with write_transaction(db):
        n = int(db.execute_sql(sql, (cutoff, run.chunk_rows)).rowcount)
    run.progress.deleted += n
    return n < run.chunk_rows


def _series_chunk(db: peewee.Database, target: Target, cutoff: int, run: Pass) -> bool:
    progress, t, c = run.progress, target.table, target.column
    if progress.series is None:
        progress.series = [int(r[0]) for r in db.execute_sql("SELECT id FROM series ORDER BY id").fetchall()]
        if not progress.series:
            return True
        row = db.execute_sql(
            f"SELECT MIN((SELECT MIN({c}) FROM {t} r WHERE r.series_id = s.id)) FROM series s"
        ).fetchone()
        if row is None or row[0] is None:
            return True
        progress.floor = int(row[0])
        progress.width = 60 * target.unit if target.width_s == 0 else target.width_s * 4
    assert progress.floor is not None
    if progress.floor >= cutoff or not progress.series:
        return True
    end = min(cutoff, progress.floor + progress.width)
    with write_transaction(db):
        kept = _kept_from(db, t)
        if kept is not None and kept <= progress.floor:
            return True  # the rest is still needed for open rollup buckets
        if kept is not None and kept < end:
            end = cutoff = kept
        n = int(
            db.execute_sql(f"DELETE FROM {t} WHERE series_id IN {int_list(progress.series)} AND {c} < {end}").rowcount
        )
    progress.deleted += n
    progress.floor = end
    if n > 2 * run.chunk_rows:
        progress.width = max(1, progress.width // 2)
    elif n < run.chunk_rows // 2:
        progress.width *= 2
    return end >= cutoff


def _recent_purge(db: peewee.Database, cutoff: int) -> int:
    """Expired rows still staged in reading_recent (storage/raw.py: readings already older than
    the raw tier's cutoff when they arrived), under the same open-bucket rule; one statement
    (the table holds about a minute of rows)."""
    with write_transaction(db):
        kept = _kept_from(db, "reading_raw")
        end = cutoff if kept is None else min(cutoff, kept)
        return int(db.execute_sql(f"DELETE FROM {RECENT} WHERE t < {int(end)}").rowcount)


#: Tables whose rows from a rollup mark on are kept: table -> (the tier whose mark, unit per second)
_KEPT_FROM_MARK = {"reading_raw": ("rollup_1m", 1000), "rollup_1m": ("rollup_1h", 1)}


def _kept_from(db: peewee.Database, table: str) -> int | None:
    """Inside a chunk's transaction: the time from which `table` must keep its rows (None: no limit)."""
    mark = _KEPT_FROM_MARK.get(table)
    if mark is None or "rollup_mark" not in db.get_tables():
        return None
    lock = "" if is_sqlite(db) else " FOR SHARE"
    row = db.execute_sql(f"SELECT complete_before FROM rollup_mark WHERE tier = {db.param}{lock}", (mark[0],)).fetchone()
    if row is None or int(row[0]) >= ALL_COMPLETE:
        return None
    return int(row[0]) * mark[1]


def purge(
    db: peewee.Database, retention: Retention, now: float, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> dict[str, int]:
    """Run a whole pass at `now` chunk by chunk (blocking; tests and tools): rows deleted per table."""
    run = Pass(retention, now, chunk_rows)
    while not run.step(db):
        pass
    return run.deleted
