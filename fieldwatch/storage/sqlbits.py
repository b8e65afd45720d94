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
            marks = ", ".join("?" * width)
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}) {tail}", rows)
        else:
            execute_values(cursor, f"INSERT INTO {table} ({columns}) VALUES %s {tail}", rows, page_size=1000)


def pg_minmax(db: peewee.Database, sql: str) -> str:
    """PostgreSQL spells scalar MIN/MAX as LEAST/GREATEST."""
    if is_sqlite(db):
        return sql
    return sql.replace("MIN(", "LEAST(").replace("MAX(", "GREATEST(")


def int_list(values: Any) -> str:
    """Integers as an SQL list literal `(1, 2, 3)`: ids inlined (no parameter-count limit)."""
    return "(" + ", ".join(str(int(v)) for v in values) + ")"
