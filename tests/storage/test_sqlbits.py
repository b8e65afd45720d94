"""insert_rows on SQLite: many rows per statement, every row once, in order, upserts included."""

from __future__ import annotations

import peewee
import pytest

from fieldwatch.storage.sqlbits import insert_rows


@pytest.mark.parametrize("width", [1, 3, 8, 20, 37])
def test_every_row_is_inserted_once_in_order_for_any_count(width: int) -> None:
    db = peewee.SqliteDatabase(":memory:")
    columns = ", ".join(f"c{i}" for i in range(width))
    db.execute_sql(f"CREATE TABLE t (n INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
    expected: list[tuple[int, ...]] = []
    for count in [0, 1, 2, 3, 63, 64, 65, 127, 200]:
        rows = [tuple(1000 * count + 10 * r + i for i in range(width)) for r in range(count)]
        insert_rows(db, "t", columns, width, rows)
        expected += rows
    got = db.execute_sql(f"SELECT {columns} FROM t ORDER BY n").fetchall()
    assert got == expected


def test_an_upsert_tail_sees_earlier_rows_of_the_same_statement() -> None:
    """Rows of one multi-row statement conflict with each other as they would one by one."""
    db = peewee.SqliteDatabase(":memory:")
    db.execute_sql("CREATE TABLE c (k INTEGER PRIMARY KEY, total INTEGER)")
    rows = [(k % 7, 1) for k in range(100)]
    insert_rows(db, "c", "k, total", 2, rows, "ON CONFLICT (k) DO UPDATE SET total = total + excluded.total")
    got = dict(db.execute_sql("SELECT k, total FROM c").fetchall())
    assert got == {k: sum(1 for r in range(100) if r % 7 == k) for k in range(7)}
