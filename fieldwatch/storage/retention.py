"""Retention: delete readings (ICMP results included), events and parse errors older than N days.

Rows go in small chunks, one short transaction each, so the writer actor is never held
up for long (SQLite has a single write lock). The retention actor calls `delete_chunk`
once per message and yields between chunks.
"""

from __future__ import annotations

import logging

import peewee

from fieldwatch.storage.db import write_transaction

__all__ = ["RETAINED", "DEFAULT_CHUNK_ROWS", "delete_chunk", "purge"]

logger = logging.getLogger(__name__)

#: (table, time column) of every table retention trims.
RETAINED: tuple[tuple[str, str], ...] = (
    ("reading", "received_at"),
    ("event", "time"),
    ("parse_error", "time"),
)

DEFAULT_CHUNK_ROWS = 1000


def delete_chunk(db: peewee.Database, table: str, column: str, cutoff: float, chunk_rows: int) -> int:
    """Delete at most `chunk_rows` rows of `table` with `column` < cutoff; return how many."""
    if (table, column) not in RETAINED:
        raise ValueError(f"{table}.{column} is not under retention")
    p = db.param
    sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < {p} ORDER BY {column} LIMIT {p})"
    with write_transaction(db):
        cursor = db.execute_sql(sql, (cutoff, chunk_rows))
        return int(cursor.rowcount)


def purge(db: peewee.Database, cutoff: float, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> dict[str, int]:
    """Delete everything older than `cutoff` chunk by chunk (blocking; tests and tools)."""
    deleted: dict[str, int] = {}
    for table, column in RETAINED:
        total = 0
        while True:
            n = delete_chunk(db, table, column, cutoff, chunk_rows)
            total += n
            if n < chunk_rows:
                break
        deleted[table] = total
    return deleted
