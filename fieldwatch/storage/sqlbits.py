"""Small SQL helpers shared by the writer's modules: bulk inserts and dialect spellings."""

from __future__ import annotations

from typing import Any

import peewee
from psycopg2.extras import execute_values

from fieldwatch.storage.db import is_sqlite

__all__ = ["clean", "insert_rows", "pg_minmax", "int_list"]

_wrap_errors: Any = vars(peewee)["__exception_wrapper__"]


def clean(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL: replace it (payload samples, values, messages)."""
    if any(isinstance(v, str) and "\x00" in v for v in row):
        return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)
    return row


def insert_rows(
    db: peewee.Database,
    table: str,
    columns: str,
    width: int,
    rows: list[tuple[Any, ...]],
    tail: str = "",
    *,
    cleaned: bool = False,
) -> None:
    """Insert many rows with one prepared statement (executemany / execute_values).

    `cleaned`: the caller already passed its text through `clean` (or has none).
    """
    if not rows:
        return
    if not cleaned:
        rows = [clean(row) for row in rows]
    with _wrap_errors:
        cursor = db.cursor()
        if is_sqlite(db):
            _sqlite_insert(cursor, f"INSERT INTO {table} ({columns}) VALUES", width, rows, tail)
        else:
            execute_values(cursor, f"INSERT INTO {table} ({columns}) VALUES %s {tail}", rows, page_size=1000)


#: SQLite's executemany lets go of the GIL and takes it back around every row (one step
#: each): at 1,000 ICMP rows a second that was ~50 GIL hand-offs per commit, every one a
#: chance for another thread to take the interpreter and make the writer wait (issue 17).
#: Rows go instead in statements of many rows (one step, one hand-off each): the sizes are
#: powers of two up to this many (a few distinct statements per table for SQLite's cache),
#: and never more than 999 parameters (the oldest SQLite limit).
_SQLITE_MAX_ROWS = 64


def _sqlite_insert(cursor: Any, head: str, width: int, rows: list[tuple[Any, ...]], tail: str) -> None:
    """`head` (INSERT INTO t (cols) VALUES) for every row, in multi-row statements."""
    group = ", ".join("?" * width).join("()")
    biggest = min(_SQLITE_MAX_ROWS, max(1, 999 // width))
    start, total = 0, len(rows)
    while start < total:
        size = biggest
        while size > total - start:
            size //= 2
        chunk = rows[start : start + size]
        cursor.execute(f"{head} {', '.join([group] * size)} {tail}", [v for row in chunk for v in row])
        start += size


def pg_minmax(db: peewee.Database, sql: str) -> str:
    """PostgreSQL spells scalar MIN/MAX as LEAST/GREATEST."""
    if is_sqlite(db):
        return sql
    return sql.replace("MIN(", "LEAST(").replace("MAX(", "GREATEST(")


def int_list(values: Any) -> str:
    """Integers as an SQL list literal `(1, 2, 3)`: ids inlined (no parameter-count limit)."""
    return "(" + ", ".join(str(int(v)) for v in values) + ")"
