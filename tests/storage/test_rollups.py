"""Rollups kept by the writer agree with the raw readings they summarise, bucket by bucket."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import peewee
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldwatch.storage import queries
from fieldwatch.storage import writes as w
from fieldwatch.storage.batch import apply_writes
from fieldwatch.storage.db import write_transaction
from fieldwatch.storage.raw import SeriesCache
from fieldwatch.storage.rollups import TIERS
from tests.storage.storage_helpers import create_site

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


def _clear(db: peewee.Database) -> None:
    with write_transaction(db):
        for table in ("rollup_1m", "rollup_1h", "reading_raw", "series", "site"):
            db.execute_sql(f"DELETE FROM {table}")


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
        records.append(
            w.ReadingRecord(
                endpoint_id=e,
                generation=0,
                name=name,
                device=device,
                value_num=value,
                value_text="text" if value is None else None,
                source_time=t if sourced else None,
                received_at=t if not sourced else T0 + 4 * 3600,
            )
        )
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
            f"SELECT series_id, (t / {width_ms}) * {tier.seconds} AS b, COUNT(*) FROM reading_raw "
            "WHERE value BETWEEN -1e308 AND 1e308 GROUP BY series_id, b"  # finite numbers only
        ).fetchall()
        rolled = db.execute_sql(f"SELECT series_id, bucket, n FROM {tier.table}").fetchall()
        assert {(s, b): n for s, b, n in rolled} == {(s, b): n for s, b, n in raw}
    total: Any = db.execute_sql("SELECT COUNT(*) FROM reading_raw").fetchone()[0]
    assert total == len(records)
    finite = [v for k, vals in want.items() if k[0] == 0 for v in vals]
    for step in (60, 180, 3600, 7200):  # a tier's own buckets, and buckets grouped from 1-minute / 1-hour ones
        buckets = queries.readings(step=step, since=T0 - 7200, until=T0 + 4 * 3600, limit=10_000)[0]
        assert sum(b["count"] for b in buckets) == len(finite), step
        if finite:
            assert min(b["min"] for b in buckets) == min(finite) and max(b["max"] for b in buckets) == max(finite)
        assert all(b["time"] is not None and b["min"] <= b["last"] <= b["max"] for b in buckets)
