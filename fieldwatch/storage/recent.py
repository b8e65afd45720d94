"""New raw rows wait in `reading_recent` on SQLite, then move into `reading_raw` (raw.py's doc).

Here (imported by the writer's modules and the readers alike): the table's name, when the
writer moves its rows, and the move itself.
"""

from __future__ import annotations

import peewee

__all__ = ["MOVE_ROWS", "MOVE_S", "RAW_COLUMNS", "RECENT", "drop_orphans", "move_recent"]

RAW_COLUMNS = "series_id, t, seq, value, aux, lag, quality, text"
#: The staging table of new rows (SQLite), and how long / how many rows they wait there.
RECENT = "reading_recent"
MOVE_S = 60.0
MOVE_ROWS = 200_000


def move_recent(db: peewee.Database) -> int:
    """Move the staged rows into reading_raw, sorted by series and time, inside the caller's
    transaction (SQLite). Rows of series deleted meanwhile are dropped (their endpoint's rows
    went with it). Returns the rows moved."""
    cols = RAW_COLUMNS
    moved = db.execute_sql(
        f"INSERT INTO reading_raw ({cols}) SELECT {cols} FROM {RECENT} "
        f"WHERE series_id IN (SELECT id FROM series) ORDER BY series_id, t, seq"
    ).rowcount
    db.execute_sql(f"DELETE FROM {RECENT}")
    return int(moved)


def drop_orphans(db: peewee.Database) -> None:
    """Delete staged rows whose series is gone (inside the caller's transaction; SQLite): after
    endpoints were deleted, before a new series could take a deleted one's id."""
    db.execute_sql(f"DELETE FROM {RECENT} WHERE series_id NOT IN (SELECT id FROM series)")
