"""Retention: old readings, events and parse errors go, in chunks; the rest stays."""

from __future__ import annotations

import time

import peewee
import pykka
from storage_helpers import create_site, write

from fieldwatch.actors.retention import RetentionActor, RunRetention
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.storage import writes as w
from fieldwatch.storage.retention import delete_chunk, purge

DAY = 86_400.0


def count(db: peewee.Database, table: str) -> int:
    return int(db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def fill(db: peewee.Database, now: float) -> int:
    e = create_site(db, "s", ("broker", "mqtt", "{}"))["broker"]
    old, new = now - 31 * DAY, now - 1 * DAY
    rows: list[w.Write] = []
    for t in (old, new):
        rows += [w.ReadingRecord(e, 0, "x", 1.0, None, "good", None, t + i) for i in range(2500)]
        rows += [w.EventRecord(e, 0, t + i, "info", "e", "") for i in range(1200)]
        rows += [w.ParseErrorRecord(e, 0, t + i, "t", "json", "bad", "x") for i in range(10)]
    rows.append(w.AlertOpen(e, 0, "down", "critical", "old alerts stay", old))
    write(db, rows)
    return e


def test_purge_deletes_old_rows_in_chunks(db: peewee.Database) -> None:
    now = time.time()
    fill(db, now)
    assert delete_chunk(db, "reading", "received_at", now - 30 * DAY, 1000) == 1000
    deleted = purge(db, now - 30 * DAY, chunk_rows=1000)
    assert deleted == {"reading": 1500, "event": 1200, "parse_error": 10}
    assert (count(db, "reading"), count(db, "event"), count(db, "parse_error")) == (2500, 1200, 10)
    assert count(db, "alert") == 1


def test_retention_actor_runs_on_its_timer_and_on_demand(db: peewee.Database) -> None:
    now = time.time()
    fill(db, now)
    scheduler = Scheduler("test-retention")
    scheduler.start()
    try:
        ref = RetentionActor.start(
            retention_days=30, scheduler=scheduler, interval_s=0.05, first_delay_s=0.0, chunk_rows=700, pause_s=0.0
        )
        deadline = time.monotonic() + 10
        while count(db, "reading") > 2500 or count(db, "parse_error") > 10:  # the periodic pass
            assert time.monotonic() < deadline, "retention did not run"
            time.sleep(0.01)
        assert ref.ask(RunRetention(), timeout=10) == {"reading": 0, "event": 0, "parse_error": 0}
        off = RetentionActor.start(retention_days=0, scheduler=scheduler)
        assert off.ask(RunRetention(), timeout=10) == {"reading": 0, "event": 0, "parse_error": 0}
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        scheduler.stop()
    assert count(db, "event") == 1200
