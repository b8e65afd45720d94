"""Rollups kept by the writer agree with the raw readings they summarise, bucket by bucket.

The writer upserts buckets per transaction (no `DeferredRollups`, as a cluster's writer
does) or keeps open buckets in memory and stores them once closed (`rollup_state`): in
both, every `step` answer equals a computation from scratch over the stored readings,
before and after flushes, after a rolled-back transaction retried, and after a crash
(the open buckets lost) and the next writer's recovery.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

import peewee
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldwatch.storage import queries
from fieldwatch.storage import writes as w
from fieldwatch.storage.batch import apply_writes
from fieldwatch.storage.db import write_transaction
from fieldwatch.storage.raw import SeriesCache
from fieldwatch.storage.retention import Retention, purge
from fieldwatch.storage.rollup_state import ALL_COMPLETE, DeferredRollups, read_marks
from fieldwatch.storage.rollups import TIERS
from tests.storage.storage_helpers import ALL_RAW, create_site

T0 = 1_764_000_000.0
NAMES = (("level", None), ("temp", "d1"), ("temp", "d2"))

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.none(),
    st.integers(min_value=-1000, max_value=1000).map(float),
)
readings = st.lists(
    st.tuples(
        st.sampled_from(range(len(NAMES))),
        st.integers(min_value=0, max_value=3 * 3600 * 1000),  # ms after T0, any order: late ones too
        values,
        st.booleans(),  # has a source time (else the receive time is its time)
    ),
    min_size=1,
    max_size=120,
)
batches = st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10)


def _reading(
    e: int,
    name: str,
    device: str | None,
    value: float | None,
    source_time: float | None,
    received_at: float,
    aux_name: str | None = None,
    aux: float | None = None,
) -> w.ReadingRecord:
    """A reading (a text one when `value` is None), with a companion value when `aux_name` is set."""
    return w.ReadingRecord(
        endpoint_id=e,
        generation=0,
        name=name,
        device=device,
        value_num=value,
        value_text="text" if value is None else None,
        source_time=source_time,
        received_at=received_at,
        aux_name=aux_name,
        aux_num=aux if aux_name else None,
    )


def _clear(db: peewee.Database) -> None:
    with write_transaction(db):
        for table in ("rollup_1m", "rollup_1h", "reading_raw", "reading_recent", "series", "site"):
            db.execute_sql(f"DELETE FROM {table}")
        db.execute_sql(f"UPDATE rollup_mark SET complete_before = {ALL_COMPLETE}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=readings, sizes=batches, fresh_cache=st.booleans())
def test_rollup_counts_equal_raw_counts_per_bucket(
    db: peewee.Database, data: list[tuple[int, int, float | None, bool]], sizes: list[int], fresh_cache: bool
) -> None:
    _clear(db)
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    records = []
    for which, offset_ms, value, sourced in data:
        name, device = NAMES[which]
        t = T0 + offset_ms / 1000
        records.append(_reading(e, name, device, value, t if sourced else None, t if not sourced else T0 + 4 * 3600))
    cache = SeriesCache()
    start = 0
    for size in [*sizes, len(records)]:  # batches as the writer commits them, then the rest
        chunk = records[start : start + size]
        start += len(chunk)
        if fresh_cache:
            cache = SeriesCache()  # a restarted writer: ids and sequence numbers come from the table
        with write_transaction(db):
            stored = apply_writes(db, chunk, {}, 0.0, cache)
        cache.commit()
        assert all(inserted for _, inserted in stored)
    # what the rollups must say, computed here from the generated readings
    want: dict[tuple[int, str, str, int], list[float]] = defaultdict(list)
    for which, offset_ms, value, _sourced in data:
        if value is not None and math.isfinite(value):
            name, device = NAMES[which]
            t_ms = round((T0 + offset_ms / 1000) * 1000)
            for i, tier in enumerate(TIERS):
                want[(i, name, device or "", (t_ms // (tier.seconds * 1000)) * tier.seconds)].append(value)
    for i, tier in enumerate(TIERS):
        rows = db.execute_sql(
            f"SELECT s.name, s.device, r.bucket, r.n, r.v_min, r.v_max, r.v_sum FROM {tier.table} r "
            "JOIN series s ON s.id = r.series_id"
        ).fetchall()
        got = {(i, n, d, b): (cnt, mn, mx, sm) for n, d, b, cnt, mn, mx, sm in rows}
        assert set(got) == {k for k in want if k[0] == i}
        for key, (cnt, mn, mx, sm) in got.items():
            vals = want[key]
            assert cnt == len(vals) and mn == min(vals) and mx == max(vals)
            assert math.isclose(sm, math.fsum(vals), rel_tol=1e-9, abs_tol=1e-6)
        # and the same per bucket from the stored raw rows themselves
        width_ms = tier.seconds * 1000
        raw = db.execute_sql(
            f"SELECT series_id, (t / {width_ms}) * {tier.seconds} AS b, COUNT(*) FROM {ALL_RAW} r "
            "WHERE value BETWEEN -1e308 AND 1e308 GROUP BY series_id, b"  # finite numbers only
        ).fetchall()
        rolled = db.execute_sql(f"SELECT series_id, bucket, n FROM {tier.table}").fetchall()
        assert {(s, b): n for s, b, n in rolled} == {(s, b): n for s, b, n in raw}
    total: Any = db.execute_sql(f"SELECT COUNT(*) FROM {ALL_RAW} r").fetchone()[0]
    assert total == len(records)
    finite = [v for k, vals in want.items() if k[0] == 0 for v in vals]
    for step in (60, 180, 3600, 7200):  # a tier's own buckets, and buckets grouped from 1-minute / 1-hour ones
        buckets = queries.readings(step=step, since=T0 - 7200, until=T0 + 4 * 3600, limit=10_000)[0]
        assert sum(b["count"] for b in buckets) == len(finite), step
        if finite:
            assert min(b["min"] for b in buckets) == min(finite) and max(b["max"] for b in buckets) == max(finite)
        assert all(b["time"] is not None and b["min"] <= b["last"] <= b["max"] for b in buckets)


# -- buckets stored once they closed (storage/rollup_state.py) -------------------------------


STEPS = (60, 120, 3600, 7200)
#: (name, device, companion name): a plain series, one with a device, a probe (rtt + packet_loss)
SERIES = (("level", None, None), ("temp", "d1", None), ("rtt", None, "packet_loss"))
Stored = list[tuple[str, str | None, int, float]]  # (name, device, t_ms, value) in the order stored

finite_or_not = st.one_of(
    st.integers(min_value=-1000, max_value=1000).map(float),
    st.floats(min_value=-1e6, max_value=1e6, width=32),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.none(),  # a text reading (no number)
)
batch_readings = st.lists(
    st.tuples(
        st.sampled_from(range(len(SERIES))),
        st.one_of(  # ms relative to the writer's clock: mostly now-ish, some late, a few early
            st.integers(min_value=-20_000, max_value=2_000),
            st.integers(min_value=-2 * 3600 * 1000, max_value=0),
            st.integers(min_value=0, max_value=120_000),
        ),
        finite_or_not,
        finite_or_not,
    ),
    max_size=25,
)
writer_steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=900),  # seconds the clock moves before this batch
        batch_readings,
        st.booleans(),  # the first attempt of the batch's transaction fails (and is retried)
        st.sampled_from(["none", "flush", "crash", "flush-crash"]),
    ),
    min_size=1,
    max_size=8,
)


class _RolledBack(Exception):
    pass


def _records(e: int, now: float, batch: list[tuple[int, int, float | None, float | None]]) -> list[w.ReadingRecord]:
    out = []
    for which, offset_ms, value, aux in batch:
        name, device, aux_name = SERIES[which]
        out.append(_reading(e, name, device, value, now + offset_ms / 1000, now, aux_name, aux))
    return out


def _stored(records: list[w.ReadingRecord]) -> Stored:
    """What the rollups must count of `records`: finite numbers, companions as their own series."""
    out: Stored = []
    for r in records:
        assert r.source_time is not None
        t_ms = round(r.source_time * 1000)
        for name, value in ((r.name, r.value_num), (r.aux_name, r.aux_num)):
            if name is not None and value is not None and math.isfinite(value):
                out.append((name, r.device, t_ms, value))
    return out


def _scratch(stored: Stored, step: int) -> dict[tuple[str, str | None, int], tuple[int, float, float, float, float]]:
    """Buckets from scratch: (name, device, start) -> (count, min, max, sum, last)."""
    cells: dict[tuple[str, str | None, int], list[Any]] = {}
    for name, device, t_ms, value in stored:
        key = (name, device, (t_ms // (step * 1000)) * step)
        cell = cells.setdefault(key, [0, value, value, [], value, t_ms])
        cell[0] += 1
        cell[1], cell[2] = min(cell[1], value), max(cell[2], value)
        cell[3].append(value)
        if t_ms >= cell[5]:  # the newest time; of two at one millisecond, the later stored
            cell[4], cell[5] = value, t_ms
    return {k: (c[0], c[1], c[2], math.fsum(c[3]), c[4]) for k, c in cells.items()}


def _answers_match(stored: Stored, where: str, steps: tuple[int, ...] = STEPS) -> None:
    for step in steps:
        items, cursor = queries.readings(step=step, since=T0 - 86_400, until=T0 + 86_400, limit=10_000)
        assert cursor is None
        got = _by_key(items, where, step)
        want = _scratch(stored, step)
        assert set(got) == set(want), (where, step, set(got) ^ set(want))
        for key, (count, mn, mx, sm, last) in want.items():
            b = got[key]
            assert (b["count"], b["min"], b["max"], b["last"]) == (count, mn, mx, last), (where, step, key, b)
            assert math.isclose(b["avg"], sm / count, rel_tol=1e-9, abs_tol=1e-6), (where, step, key)


def _by_key(items: list[dict[str, Any]], where: str, step: int) -> dict[tuple[str, str | None, int], dict[str, Any]]:
    got: dict[tuple[str, str | None, int], dict[str, Any]] = {}
    for b in items:
        key = (b["name"], b["device"], round(queries_time(b["time"])))
        assert key not in got, (where, step, key)
        got[key] = b
    return got


def _answers(steps: tuple[int, ...] = STEPS) -> list[list[dict[str, Any]]]:
    return [queries.readings(step=step, since=T0 - 86_400, until=T0 + 86_400, limit=10_000)[0] for step in steps]


def queries_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _commit(
    db: peewee.Database, cache: SeriesCache, state: DeferredRollups, records: list[w.ReadingRecord], now: float, fail: bool
) -> None:
    """One batch as the writer commits it: staged additions kept only after the commit."""
    for attempt in range(2 if fail else 1):
        try:
            with write_transaction(db):
                apply_writes(db, records, {}, now, cache, None, state)
                if fail and attempt == 0:
                    raise _RolledBack
        except _RolledBack:
            cache.discard()
            continue
        cache.commit()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(min_value=0, max_value=3 * 3600), steps=writer_steps)
def test_open_buckets_answer_like_raw_through_flushes_rollbacks_and_crashes(
    db: peewee.Database,
    start: int,
    steps: list[tuple[int, list[tuple[int, int, float | None, float | None]], bool, str]],
) -> None:
    _clear(db)
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    now = T0 + start
    state, cache = DeferredRollups(), SeriesCache()
    state.recover(db, now)
    stored: Stored = []
    for i, (advance, batch, fail, action) in enumerate(steps):
        now += advance
        records = _records(e, now, batch)
        _commit(db, cache, state, records, now, fail)
        stored += _stored(records)
        _answers_match(stored, f"batch {i}")
        if "flush" in action and state.due(now):
            state.flush(db, now)
            _answers_match(stored, f"flush after batch {i}")
        if "crash" in action:  # the open buckets are lost; the next writer rebuilds them
            state, cache = DeferredRollups(), SeriesCache()
            state.recover(db, now)
            _answers_match(stored, f"recovery after batch {i}")
        marks = read_marks(db)
        assert marks == state.marks and marks[0] < ALL_COMPLETE and marks[1] < ALL_COMPLETE
        for tier, mark in zip(TIERS, marks, strict=True):  # nothing stored at/after a mark
            assert db.execute_sql(f"SELECT COUNT(*) FROM {tier.table} WHERE bucket >= {mark}").fetchone()[0] == 0
    # a much later flush stores every bucket; the answers come from the tiers alone then
    now += 2 * 3600
    assert state.due(now)
    state.flush(db, now)
    _answers_match(stored, "all flushed")
    newest = max((t for _n, _d, t, _v in stored), default=0)
    assert newest < state.marks[0] * 1000  # every reading is in a stored bucket now


def _writer_batch(db: peewee.Database, state: DeferredRollups, records: list[w.ReadingRecord], now: float) -> Stored:
    _commit(db, SeriesCache(), state, records, now, fail=False)
    return _stored(records)


def _rows(db: peewee.Database, table: str) -> int:
    """Rows of `table`; of "reading_raw": with the staged ones (storage/raw.py)."""
    source = f"{ALL_RAW} r" if table == "reading_raw" else table
    return int(db.execute_sql(f"SELECT COUNT(*) FROM {source}").fetchone()[0])


def test_a_crash_before_any_flush_loses_nothing(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    now = T0 + 3590.0  # ten seconds before an hour ends
    state = DeferredRollups()
    state.recover(db, now)
    assert state.marks == [T0 + 3540, T0]
    stored: Stored = []
    for i in range(30):  # across the minute and the hour, a probe (rtt + loss) and a text reading
        now += 1.0
        batch = [
            _reading(e, "rtt", None, float(i), now, now, "packet_loss", 0.0 if i % 3 else 100.0),
            _reading(e, "level", "d1", None if i % 5 == 0 else i * 0.5, now - 0.5, now),
        ]
        stored += _writer_batch(db, state, batch, now)
    stored += _writer_batch(db, state, [_reading(e, "level", "d1", -7.0, T0 + 3500, now)], now)  # late: upserted
    assert _rows(db, "rollup_1m") == 1 and _rows(db, "rollup_1h") == 0  # only the late reading's minute
    _answers_match(stored, "before the crash")
    # kill -9: the raw rows are committed; a new writer reads the marks and stores what closed
    state = DeferredRollups()
    state.recover(db, now)
    assert state.marks == [T0 + 3540, T0]
    _answers_match(stored, "after recovery")
    now += 3600  # T0 + 7220: both hours closed
    state.flush(db, now)
    assert state.marks == [T0 + 7200, T0 + 7200] == read_marks(db)
    assert _rows(db, "rollup_1h") == 3 * 2  # rtt, packet_loss, level: two hours each
    _answers_match(stored, "all stored")


def test_retention_keeps_the_rows_open_buckets_need(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    tiny = Retention(raw_days=5 / 86_400, minute_days=60 / 86_400, hour_days=0, events_days=0)
    now = T0 + 1800.0
    state = DeferredRollups()
    state.recover(db, now)
    stored: Stored = []
    for i in range(30):
        now += 1.0
        stored += _writer_batch(db, state, [_reading(e, "rtt", None, float(i), now, now, "packet_loss", 0.0)], now)
    # raw_days (5 s) let all but the newest rows expire, but their minute is still open
    purge(db, tiny, now + 20)
    assert _rows(db, "reading_raw") == 30
    _answers_match(stored, "open minute, raw rows expired")
    now = T0 + 1870.0  # the minute closed: stored, then its raw rows may go
    state.flush(db, now)
    assert state.marks == [T0 + 1860, T0]
    purge(db, tiny, now)
    assert _rows(db, "reading_raw") == 0
    _answers_match(stored, "closed minute, raw rows gone")
    # minute_days (60 s) let the 1-minute rows expire, but their hour is still open
    purge(db, tiny, T0 + 2400)
    assert _rows(db, "rollup_1m") == 2
    _answers_match(stored, "open hour, 1-minute rows expired")
    state.flush(db, T0 + 3700)
    assert _rows(db, "rollup_1h") == 2
    purge(db, tiny, T0 + 3700)
    assert _rows(db, "rollup_1m") == 0
    _answers_match(stored, "closed hour, 1-minute rows gone", steps=(3600, 7200))


def test_a_single_writer_lowers_all_complete_marks_only_where_finer_rows_agree(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    now = T0 + 1830.0
    records = [_reading(e, "rtt", None, float(i), T0 + 1700 + i, now, "packet_loss", float(i % 2)) for i in range(130)]
    with write_transaction(db):  # as a cluster's writer (or one before migration 5) stored them
        apply_writes(db, records, {}, now)
    assert read_marks(db) == [ALL_COMPLETE, ALL_COMPLETE]
    stored = _stored(records)
    _answers_match(stored, "complete")
    state = DeferredRollups()
    state.recover(db, now)
    assert state.marks == read_marks(db) == [T0 + 1800, T0]  # the current minute and hour
    assert db.execute_sql(f"SELECT COUNT(*) FROM rollup_1m WHERE bucket >= {T0 + 1800}").fetchone()[0] == 0
    assert _rows(db, "rollup_1h") == 0
    _answers_match(stored, "lowered")
    # again, but retention already deleted the current minute's raw rows: the stored
    # minute is kept, and only the next one is kept open
    _clear(db)
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    records = [_reading(e, "rtt", None, float(i), T0 + 1700 + i, now, "packet_loss", float(i % 2)) for i in range(130)]
    with write_transaction(db):
        apply_writes(db, records, {}, now)
    before = _answers()
    with write_transaction(db):
        for table in ("reading_raw", "reading_recent"):
            db.execute_sql(f"DELETE FROM {table} WHERE t >= {(T0 + 1800) * 1000}")
    state = DeferredRollups()
    state.recover(db, now)
    assert state.marks == [T0 + 1860, T0]
    assert _answers() == before


def test_a_cluster_writer_stores_the_open_buckets_and_upserts_per_transaction(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    now = T0 + 1830.0
    single = DeferredRollups()
    single.recover(db, now)
    stored = _writer_batch(db, single, [_reading(e, "t", None, float(i), now - i, now) for i in range(50)], now)
    assert _rows(db, "rollup_1h") == 0
    clustered = DeferredRollups(defer=False)  # the next start is in a cluster: nothing may stay open
    clustered.recover(db, now)
    assert clustered.marks == read_marks(db) == [ALL_COMPLETE, ALL_COMPLETE]
    assert _rows(db, "rollup_1h") == 1 and _rows(db, "rollup_1m") == 2
    _answers_match(stored, "clustered")
    stored += _writer_batch(db, clustered, [_reading(e, "t", None, 99.0, now + 100, now + 100)], now + 100)
    assert not clustered.due(now + 7200)
    assert _rows(db, "rollup_1m") == 3
    _answers_match(stored, "upserted")
