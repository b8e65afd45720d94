"""New raw rows staged in `reading_recent` (SQLite) read exactly as once moved into `reading_raw`.

The writer inserts into the staging table and moves its rows once a minute, before its first
write and before it aggregates closed rollup buckets (storage/raw.py). Every answer the API
gives — pages of readings (paged through both tables), buckets, the newest readings — must be
the same whether a row is still staged or already moved; sequence numbers of readings at one
millisecond must stay unique across both tables; a deleted endpoint's staged rows go with it.
"""

from __future__ import annotations

import math
from typing import Any

import peewee
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldwatch.storage import commands as c
from fieldwatch.storage import queries, sites
from fieldwatch.storage import writes as w
from fieldwatch.storage.batch import apply_writes
from fieldwatch.storage.db import write_transaction
from fieldwatch.storage.raw import SeriesCache
from fieldwatch.storage.recent import MOVE_S, RECENT, drop_orphans, move_recent
from fieldwatch.storage.rollup_state import DeferredRollups
from tests.storage.storage_helpers import ALL_RAW, create_site

T0 = 1_764_000_000.0

values = st.one_of(
    st.integers(min_value=-50, max_value=50).map(float),
    st.sampled_from([math.nan, math.inf]),
    st.none(),
)
#: (which series, ms after T0 (few distinct: readings at one millisecond), value, companion value)
batch = st.lists(
    st.tuples(st.sampled_from(range(3)), st.integers(min_value=0, max_value=150_000).map(lambda ms: ms - ms % 7_000),
              values, values),
    min_size=1,
    max_size=15,
)  # fmt: skip
steps = st.lists(
    st.tuples(batch, st.sampled_from(["stay", "move due", "new writer", "flush"])), min_size=1, max_size=6
)


def _count(db: peewee.Database, table: str) -> int:
    return int(db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _records(e: int, items: list[tuple[int, int, float | None, float | None]]) -> list[w.ReadingRecord]:
    out = []
    for which, ms, value, aux in items:
        t = T0 + ms / 1000
        if which == 2:  # a probe: rtt with its packet loss, one row
            out.append(w.ReadingRecord(endpoint_id=e, generation=0, name="rtt", value_num=value, source_time=t,
                                       received_at=t + 0.01, aux_name="packet_loss", aux_num=aux))
        else:
            out.append(w.ReadingRecord(endpoint_id=e, generation=0, name=f"n{which}", value_num=value,
                                       value_text=None if value is not None else "text", source_time=t,
                                       received_at=t + 0.5))
    return out  # fmt: skip


def _pages(**kw: Any) -> list[dict[str, Any]]:
    """Every reading, page by page (small pages: cursors cross from staged rows to moved ones)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        items, cursor = queries.readings(limit=4, cursor=cursor, **kw)
        out += items
        if cursor is None:
            return out


def _answers(db: peewee.Database, e: int) -> Any:
    whole = (T0 - 60, T0 + 3 * 3600)
    view = "SELECT name, device, value_num, value_text, quality, source_time, received_at FROM reading"
    return (
        sorted(map(repr, db.execute_sql(view).fetchall())),  # the v1 view SQL tools read
        _pages(site="s", endpoint="plc"),
        _pages(site="s", endpoint="plc", name="rtt", since=T0 + 30, until=T0 + 100),
        [queries.readings(site="s", endpoint="plc", step=step, since=whole[0], until=whole[1], limit=10_000)[0]
         for step in (60, 120, 3600)],
        queries.latest_readings(e, per_name=3),
    )  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=steps)
def test_staged_rows_read_exactly_as_moved_ones(db: peewee.Database, backend: str, data: Any) -> None:
    if backend != "sqlite":
        pytest.skip("rows are staged on SQLite only")
    with write_transaction(db):
        for table in (RECENT, "reading_raw", "rollup_1m", "rollup_1h", "series", "site"):
            db.execute_sql(f"DELETE FROM {table}")
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    cache = SeriesCache()
    now = T0 + 50.0
    state = DeferredRollups()  # as the writer: open buckets are read from the rows (staged or moved)
    state.recover(db, now)
    written = 0
    for items, then in data:
        records = _records(e, items)
        with write_transaction(db):
            stored = apply_writes(db, records, {}, now, cache, None, state)
        cache.commit()
        assert all(inserted for _, inserted in stored)
        written += len(records)
        assert _count(db, RECENT) > 0  # the batch is staged, not written to reading_raw
        assert _count(db, f"{ALL_RAW} r") == written
        assert _count(db, f"(SELECT DISTINCT series_id, t, seq FROM {ALL_RAW} r) k") == written  # keys unique
        staged = _answers(db, e)
        with db.atomic() as moved:  # the same rows, all moved: every answer must be the same
            move_recent(db)
            assert _count(db, RECENT) == 0 and _count(db, "reading_raw") == written
            assert _answers(db, e) == staged
            moved.rollback()
        if then == "move due":
            assert cache.moved_at is not None
            cache.moved_at -= MOVE_S  # a minute passed: the next write moves first
        elif then == "new writer":
            cache = SeriesCache()  # a restarted writer moves what is staged before its first write
            state = DeferredRollups()
            state.recover(db, now)
        elif then == "flush":  # a minute closed: moved, then its buckets aggregated from reading_raw
            now += 60.0
            state.flush(db, now)
            assert _count(db, RECENT) == 0


def test_the_writer_moves_staged_rows_in_series_order_once_a_minute(db: peewee.Database, backend: str) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    cache = SeriesCache()

    def write(ms: int) -> None:
        with write_transaction(db):
            apply_writes(db, _records(e, [(k % 3, ms, float(k), 0.0) for k in range(6)]), {}, 0.0, cache)
        cache.commit()

    write(0)
    if backend != "sqlite":  # PostgreSQL: straight into reading_raw, the staging table stays empty
        assert (_count(db, "reading_raw"), _count(db, RECENT)) == (6, 0)
        return
    assert (_count(db, "reading_raw"), _count(db, RECENT)) == (0, 6)
    write(7_000)
    assert (_count(db, "reading_raw"), _count(db, RECENT)) == (0, 12)  # less than a minute: still staged
    assert cache.moved_at is not None
    cache.moved_at -= MOVE_S
    write(14_000)
    assert (_count(db, "reading_raw"), _count(db, RECENT)) == (12, 6)  # moved first, then staged


def test_a_deleted_endpoints_staged_rows_go_with_it(db: peewee.Database, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("rows are staged on SQLite only")
    ids = create_site(db, "s", ("plc", "opcua", "{}"), ("other", "opcua", "{}"))
    cache = SeriesCache()
    with write_transaction(db):
        apply_writes(db, _records(ids["plc"], [(0, 0, 1.0, None)]) + _records(ids["other"], [(0, 0, 2.0, None)]),
                     {}, 0.0, cache)  # fmt: skip
    cache.commit()
    assert _count(db, RECENT) == 2
    with write_transaction(db):
        sites.execute(c.DeleteEndpoint(ids["plc"]), 0.0)
        drop_orphans(db)
    assert db.execute_sql(f"SELECT series_id FROM {RECENT}").fetchall() == db.execute_sql(
        "SELECT id FROM series"
    ).fetchall()  # the other endpoint's row only
    with write_transaction(db):  # and a move keeps only rows whose series exists (no foreign-key failure)
        move_recent(db)
    assert _count(db, RECENT) == 0
