"""Retention tiers: raw readings, rollups, events and parse errors each go after their own time, in chunks."""

from __future__ import annotations

import logging
import sqlite3
import time

import peewee
import pykka
import pytest

from fieldwatch.actors.retention import DEFAULT_INTERVAL_S, RetentionActor, RunRetention
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.storage import queries
from fieldwatch.storage import writes as w
from fieldwatch.storage.db import is_sqlite, write_transaction
from fieldwatch.storage.recent import move_recent
from fieldwatch.storage.retention import TARGETS, Pass, Retention, purge
from tests.storage.storage_helpers import ALL_RAW, create_site, write
from tests.waiting import wait_for

DAY = 86_400.0
THIRTY = Retention(raw_days=30, minute_days=90, hour_days=730, events_days=30)


def count(db: peewee.Database, table: str) -> int:
    """Rows of `table`; of "reading_raw": with the staged ones (storage/raw.py)."""
    source = f"{ALL_RAW} r" if table == "reading_raw" else table
    return int(db.execute_sql(f"SELECT COUNT(*) FROM {source}").fetchone()[0])


def reading(e: int, t: float, value: float = 1.0) -> w.ReadingRecord:
    return w.ReadingRecord(endpoint_id=e, generation=0, name="x", value_num=value, received_at=t)


def fill(db: peewee.Database, now: float) -> int:
    e = create_site(db, "s", ("broker", "mqtt", "{}"))["broker"]
    old, new = now - 31 * DAY, now - 1 * DAY
    rows: list[w.Write] = []
    for t in (old, new):
        rows += [reading(e, t + i) for i in range(2500)]
        rows += [
            w.EventRecord(endpoint_id=e, generation=0, time=t + i, level="info", event="e", message="")
            for i in range(1200)
        ]
        rows += [
            w.ParseErrorRecord(
                endpoint_id=e, generation=0, time=t + i, topic="t", parser="json", error="bad", sample="x"
            )
            for i in range(10)
        ]
    rows.append(
        w.AlertOpen(
            endpoint_id=e, generation=0, condition="down", severity="critical", message="active alerts stay", time=old
        )
    )
    write(db, rows)
    if is_sqlite(db):  # as the writer does within a minute: the chunks below are reading_raw's
        with write_transaction(db):
            move_recent(db)
    return e


def test_purge_deletes_each_tier_after_its_own_time_in_chunks(db: peewee.Database) -> None:
    now = time.time()
    fill(db, now)
    minutes = count(db, "rollup_1m")
    run = Pass(THIRTY, now, chunk_rows=1000)
    assert run.step(db) is False  # one chunk, not the whole backlog
    assert 0 < 5000 - count(db, "reading_raw") < 2500
    deleted = purge(db, THIRTY, now, chunk_rows=1000)
    assert deleted["event"] == 1200 and deleted["parse_error"] == 10
    assert (count(db, "reading_raw"), count(db, "event"), count(db, "parse_error")) == (2500, 1200, 10)
    assert count(db, "rollup_1m") == minutes  # 31-day-old rollups are kept 90 days
    assert count(db, "alert") == 1  # active: never expires
    hours = count(db, "rollup_1h")
    shorter = purge(db, Retention(raw_days=30, minute_days=30, hour_days=30, events_days=30), now)
    assert shorter["rollup_1m"] > 0 and shorter["rollup_1h"] > 0
    assert count(db, "rollup_1m") < minutes and count(db, "rollup_1h") < hours


def test_retention_actor_runs_on_its_timer_and_on_demand(db: peewee.Database) -> None:
    now = time.time()
    fill(db, now)
    scheduler = Scheduler("test-retention")
    scheduler.start()
    try:
        ref = RetentionActor.start(
            retention=THIRTY, scheduler=scheduler, interval_s=0.05, first_delay_s=0.0, chunk_rows=700, pause_s=0.0
        )
        wait_for(
            lambda: count(db, "reading_raw") <= 2500 and count(db, "parse_error") <= 10, 10, what="the periodic pass"
        )
        assert ref.ask(RunRetention(), timeout=10) == {target.table: 0 for target in TARGETS}
        forever = Retention(raw_days=0, minute_days=0, hour_days=0, events_days=0)
        off = RetentionActor.start(retention=forever, scheduler=scheduler)
        assert off.ask(RunRetention(), timeout=10) == {target.table: 0 for target in TARGETS}
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        scheduler.stop()
    assert count(db, "event") == 1200


def test_expired_raw_readings_go_within_a_minute_and_their_rollups_answer_step_queries(db: peewee.Database) -> None:
    """Acceptance (issue 16): at the default interval, raw rows older than raw_days are
    gone within a minute of expiring; their 1-minute rollups stay and answer `step`."""
    assert DEFAULT_INTERVAL_S <= 60
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    raw_s = 10.0
    written = time.time() - 4.0  # expires 6 s from now: after the first pass (5 s), before the second
    write(db, [reading(e, written + i / 1000, float(i)) for i in range(50)])
    expires = written + 0.049 + raw_s
    retention = Retention(raw_days=raw_s / DAY, minute_days=90, hour_days=730, events_days=90)
    scheduler = Scheduler("test-retention")
    scheduler.start()
    try:
        RetentionActor.start(retention=retention, scheduler=scheduler)  # default interval and first delay
        wait_for(lambda: not count(db, "reading_raw"), 90, 0.2, what="the expired raw readings to go")
        gone = time.time()
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        scheduler.stop()
    assert expires < gone < expires + 60, (expires, gone)
    assert queries.readings(site="s", endpoint="plc") == ([], None)
    buckets, _ = queries.readings(site="s", endpoint="plc", name="x", step=60, since=written - 120, until=written + 120)
    assert sum(b["count"] for b in buckets) == 50
    assert min(b["min"] for b in buckets) == 0.0 and max(b["max"] for b in buckets) == 49.0


def test_a_chunk_that_finds_the_database_locked_is_retried_not_abandoned(
    db: peewee.Database, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if backend != "sqlite":
        pytest.skip("a SQLite write lock held by another connection")
    now = time.time()
    fill(db, now)
    path = db.database
    scheduler = Scheduler("test-retention")
    scheduler.start()
    locker = sqlite3.connect(path, timeout=0.1)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock for longer than the busy timeout
        with caplog.at_level(logging.WARNING, logger="fieldwatch.actors.retention"):
            RetentionActor.start(retention=THIRTY, scheduler=scheduler, interval_s=3600, first_delay_s=0.0)
            wait_for(
                lambda: any("retrying with backoff" in r.getMessage() for r in caplog.records),
                10,
                0.05,
                what="the locked chunk to be reported",
            )
        assert count(db, "reading_raw") == 5000
        locker.rollback()
        # the next pass would be an hour away: only the retry can do it
        wait_for(
            lambda: count(db, "reading_raw") <= 2500 and count(db, "event") <= 1200, 30, 0.05, what="the pass to resume"
        )
    finally:
        locker.close()
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        scheduler.stop()
