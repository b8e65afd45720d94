"""Fault tests of the persistence actor: storage unavailable for a while, nothing lost.

SQLite: another process holds an exclusive lock on the file for 5 s while 10,000
readings and 100 state changes are submitted. PostgreSQL: the writer's backend is
killed with pg_terminate_backend again and again during the load.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import peewee
import pykka
import pytest

from fieldwatch.actors.persistence import PersistenceActor
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.policy import Retry, StoragePolicy
from fieldwatch.storage import commands as c
from fieldwatch.storage import writes as w
from fieldwatch.storage.db import reset_connection
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.testing import PG_ENV, pg_url, start_generation, temporary_database
from tests.waiting import wait_for

POLICY = StoragePolicy(retry=Retry(initial_s=0.05, max_s=0.5))
READINGS = 10_000
STATE_CHANGES = 100
ENDPOINTS = 4
STATES = ("connecting", "up", "stale", "down", "faulty")

_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault: hold the lock this long
conn.execute("COMMIT")
print("released", flush=True)
"""


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    sched = Scheduler("test-storage-faults")
    sched.start()
    yield sched
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    sched.stop()


class Load:
    """10,000 readings (with msg_keys) and 100 state changes (each with its event)."""

    def __init__(self, gateway: StorageGateway) -> None:
        site = gateway.command(
            c.CreateSite(
                c.SiteSpec("s", True, "{}", tuple(c.EndpointSpec(f"e{i}", "mqtt", True) for i in range(ENDPOINTS)))
            )
        )
        self.gateway = gateway
        self.endpoints = [e.id for e in site.endpoints]
        self.generations = {e: start_generation(gateway, e) for e in self.endpoints}
        self.acked = 0
        self._lock = threading.Lock()
        self.last_state: dict[int, str] = {}

    def _ack(self, _inserted: bool) -> None:
        with self._lock:
            self.acked += 1

    def submit(self, chunks: int, between: Callable[[], None] = lambda: None) -> None:
        per_chunk, changes_per_chunk = READINGS // chunks, STATE_CHANGES // chunks
        n = k = 0
        for _ in range(chunks):
            for _ in range(per_chunk):
                e = self.endpoints[n % ENDPOINTS]
                self.gateway.submit(
                    w.ReadingRecord(
                        endpoint_id=e,
                        generation=self.generations[e],
                        name="v",
                        value_num=float(n),
                        value_text=None,
                        quality="good",
                        source_time=None,
                        received_at=time.time(),
                        msg_key=f"m{n}",
                        on_commit=self._ack,
                    )
                )
                n += 1
            for _ in range(changes_per_chunk):
                e = self.endpoints[k % ENDPOINTS]
                state = STATES[k % len(STATES)]
                now = time.time()
                self.gateway.submit(
                    w.StateChange(
                        endpoint_id=e,
                        generation=self.generations[e],
                        state=state,
                        since=now,
                        reason=f"change {k}",
                        down_since=None,
                        last_data_at=now,
                    )
                )
                self.gateway.submit(
                    w.EventRecord(
                        endpoint_id=e,
                        generation=self.generations[e],
                        time=now,
                        level="info",
                        event="state",
                        message=f"change {k}",
                    )
                )
                self.last_state[e] = f"change {k}"
                k += 1
            between()
        assert (n, k) == (READINGS, STATE_CHANGES)

    def check(self, db: peewee.Database) -> None:
        wait_for(lambda: self.gateway.queue_depth == 0, 30, what="every write to be committed")
        reset_connection(db)  # the test thread's own connection may have been killed too
        assert db.execute_sql("SELECT COUNT(*) FROM reading").fetchone()[0] == READINGS
        assert db.execute_sql("SELECT COUNT(DISTINCT value_num) FROM reading").fetchone()[0] == READINGS
        assert db.execute_sql("SELECT COUNT(DISTINCT msg_key) FROM reading_key").fetchone()[0] == READINGS
        messages = {m for (m,) in db.execute_sql("SELECT message FROM event").fetchall()}
        assert messages == {f"change {k}" for k in range(STATE_CHANGES)}  # none lost (at least once)
        for e in self.endpoints:
            reason = db.execute_sql(f"SELECT reason FROM endpoint WHERE id = {db.param}", (e,)).fetchone()[0]
            assert reason == self.last_state[e]  # the last change of each endpoint won
        assert self.acked >= READINGS
        stats = self.gateway.stats()
        assert stats.write_errors_total > 0
        assert stats.ready and stats.reason is None
        assert stats.discarded_total == 0


def test_sqlite_locked_by_another_process_loses_nothing(
    tmp_path: Path, scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    with temporary_database("sqlite", tmp_path, busy_timeout_ms=200) as db:
        gateway = StorageGateway(max_queue=100_000)
        PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
        load = Load(gateway)
        wait_for(lambda: gateway.queue_depth == 0, 15, what="the set-up writes")
        locker = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(db.database), "5"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert locker.stdout is not None
            assert locker.stdout.readline().strip() == "locked"
            with caplog.at_level(logging.INFO, logger="fieldwatch.actors.persistence"):
                load.submit(chunks=10)
                wait_for(lambda: not gateway.stats().ready, 4, what="readiness to turn false")
                assert locker.poll() is None, "the lock must still be held when readiness turns false"
                assert "locked" in (gateway.stats().reason or "")
                assert gateway.queue_depth > 0
                assert locker.stdout.readline().strip() == "released"
                assert locker.wait(timeout=10) == 0
                load.check(db)
        finally:
            locker.kill()
            locker.wait()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, "one error line per failure episode, not one per retry"
        assert any("recovered" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


@pytest.mark.skipif(pg_url() is None, reason=f"{PG_ENV} is not set (no PostgreSQL)")
def test_postgresql_backend_killed_repeatedly_loses_nothing(tmp_path: Path, scheduler: Scheduler) -> None:
    import psycopg2

    with temporary_database("postgresql", tmp_path) as db:
        app_name = db.fieldwatch_schema  # type: ignore[attr-defined]
        gateway = StorageGateway(max_queue=100_000)
        PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
        load = Load(gateway)
        kills = 0
        seen_not_ready = False
        stop = threading.Event()
        killer_conn = psycopg2.connect(pg_url(), application_name="fieldwatch-test-killer")
        killer_conn.autocommit = True

        def killer() -> None:
            nonlocal kills, seen_not_ready
            with killer_conn.cursor() as cur:
                while not stop.wait(0.05):
                    cur.execute(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND pid <> pg_backend_pid()",
                        (app_name,),
                    )
                    kills += cur.fetchone()[0]
                    seen_not_ready = seen_not_ready or not gateway.stats().ready

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:

            def until_a_kill() -> None:
                before = kills
                wait_for(lambda: kills > before, 15, what="the killer to terminate a backend")

            load.submit(chunks=20, between=until_a_kill)
            wait_for(lambda: seen_not_ready, 15, what="readiness to turn false")
        finally:
            stop.set()
            thread.join(timeout=5)
            killer_conn.close()
        assert kills >= 20
        load.check(db)
