"""Fencing by epoch in the persistence writer (SPEC section 10), on the test PostgreSQL.

The writer checks every batch's sites against the lease table inside its transaction:
writes made under an epoch the lease no longer has are left out, counted and never
reported stored. Without a fence (a single instance) nothing of this runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import peewee
import pykka
import pytest

from fieldwatch.actors.persistence import PersistenceActor
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.cluster.fencing import EpochFence
from fieldwatch.cluster.schema import LEASE_TABLE
from fieldwatch.cluster.view import FencedWrites
from fieldwatch.policy import Retry, StoragePolicy
from fieldwatch.storage import commands as c
from fieldwatch.storage import writes as w
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.rollup_state import ALL_COMPLETE
from fieldwatch.storage.testing import PG_ENV, pg_url, temporary_database
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(pg_url() is None, reason=f"{PG_ENV} is not set")

POLICY = StoragePolicy(retry=Retry(initial_s=0.05, max_s=0.5))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[peewee.Database]:
    with temporary_database("postgresql", tmp_path) as database:
        yield database
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


@pytest.fixture
def setup(db: peewee.Database, scheduler: Scheduler) -> Iterator[tuple[StorageGateway, EpochFence, int]]:
    """A gateway with a fence, a running writer and one endpoint of site `s` (lease epoch 2)."""
    gateway = StorageGateway(max_queue=10_000)
    fence = EpochFence(FencedWrites())
    gateway.fence = fence
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
    stored = gateway.command(c.SyncConfig([c.SiteSpec("s", True, "{}", (c.EndpointSpec("e", "icmp", True, "{}"),))]))
    endpoint_id = stored[0].endpoints[0].id
    set_lease(db, "s", 2)
    yield gateway, fence, endpoint_id
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


def set_lease(db: peewee.Database, site: str, epoch: int, *, expired: bool = False) -> None:
    expiry = "now() - interval '1 second'" if expired else "now() + interval '1 hour'"
    with db.atomic():
        db.execute_sql(
            f"INSERT INTO {LEASE_TABLE} (site, owner_name, owner_boot, epoch, expires_at) "
            f"VALUES (%s, 'me', 'boot', %s, {expiry}) "
            f"ON CONFLICT (site) DO UPDATE SET epoch = excluded.epoch, expires_at = excluded.expires_at",
            (site, epoch),
        )


def readings(db: peewee.Database) -> int:
    return int(db.execute_sql("SELECT count(*) FROM reading_raw").fetchone()[0])


def reading(endpoint_id: int, generation: int, value: float, results: list[bool]) -> w.ReadingRecord:
    return w.ReadingRecord(endpoint_id=endpoint_id, generation=generation, name="v", value_num=value,
                           received_at=1000.0 + value, on_commit=results.append)  # fmt: skip


def drained(gateway: StorageGateway) -> None:
    wait_for(lambda: gateway.queue_depth == 0, 10, what="the queue to drain")


def test_writes_of_the_held_epoch_are_stored_and_an_old_epoch_is_fenced(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int], caplog: pytest.LogCaptureFixture
) -> None:
    gateway, fence, endpoint_id = setup
    results: list[bool] = []
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=7, epoch=2))
    gateway.submit_many([reading(endpoint_id, 7, float(i), results) for i in range(3)])
    drained(gateway)
    assert readings(db) == 3 and results == [True, True, True]
    assert fence.counter.value == 0
    # a site's next owner cannot know a dead owner's memory: no rollup bucket is kept open
    assert db.execute_sql("SELECT n FROM rollup_1m").fetchall() == [(3,)]  # 1000-1002 s: one minute, stored
    assert db.execute_sql("SELECT n FROM rollup_1h").fetchall() == [(3,)]
    marks = db.execute_sql("SELECT complete_before FROM rollup_mark").fetchall()
    assert marks == [(ALL_COMPLETE,), (ALL_COMPLETE,)]

    set_lease(db, "s", 3)  # another instance took the site over
    before = gateway.stats()
    with caplog.at_level(logging.WARNING, logger="fieldwatch.cluster"):
        gateway.submit_many([reading(endpoint_id, 7, float(i), results) for i in range(3, 6)])
        drained(gateway)
        gateway.submit_many([
            reading(endpoint_id, 7, 6.0, results),
            w.StateChange(endpoint_id=endpoint_id, generation=7, state="down", since=2000.0, reason="zombie",
                          down_since=2000.0, last_data_at=None),
        ])  # fmt: skip
        drained(gateway)
    assert readings(db) == 3, "a write of an old epoch was committed"
    assert results == [True, True, True], "a fenced reading was reported to its producer"
    assert fence.counter.value == 5
    after = gateway.stats()
    assert after.writes_total == before.writes_total  # nothing counted as stored
    assert after.discarded_total - before.discarded_total == 5
    state = db.execute_sql("SELECT state FROM endpoint WHERE id = %s", (endpoint_id,)).fetchone()[0]
    assert state != "down"
    logged = [r for r in caplog.records if "refusing writes for site s" in r.getMessage()]
    assert len(logged) == 1, "one log line per site per fencing episode"


def test_an_expired_lease_fences_even_at_the_same_epoch(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int]
) -> None:
    gateway, fence, endpoint_id = setup
    results: list[bool] = []
    set_lease(db, "s", 2, expired=True)
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=8, epoch=2))
    gateway.submit(reading(endpoint_id, 8, 1.0, results))
    drained(gateway)
    assert readings(db) == 0 and results == [] and fence.counter.value == 2


def test_an_incarnation_begun_without_the_lease_writes_nothing(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int]
) -> None:
    gateway, fence, endpoint_id = setup
    results: list[bool] = []
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=9, epoch=None))
    gateway.submit(reading(endpoint_id, 9, 1.0, results))
    gateway.submit(w.EventRecord(endpoint_id=None, generation=0, time=1.0, level="info", event="x", message="kept"))
    drained(gateway)
    assert readings(db) == 0 and results == [] and fence.counter.value == 2
    assert db.execute_sql("SELECT count(*) FROM event WHERE message = 'kept'").fetchone()[0] == 1


def test_a_new_generation_under_the_new_epoch_writes_again(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int]
) -> None:
    gateway, fence, endpoint_id = setup
    results: list[bool] = []
    set_lease(db, "s", 4)
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=10, epoch=2))
    gateway.submit(reading(endpoint_id, 10, 1.0, results))  # the lost epoch: fenced
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=11, epoch=4))  # regained at 4
    gateway.submit(reading(endpoint_id, 11, 2.0, results))
    drained(gateway)
    assert readings(db) == 1 and results == [True]
    assert fence.counter.value == 2  # the GenerationStarted of epoch 2 and its reading


def test_fencing_turned_off_lets_the_old_epoch_through(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int]
) -> None:
    """The negative of the first test: what the check prevents (EpochFence.enabled False)."""
    gateway, fence, endpoint_id = setup
    fence.enabled = False
    results: list[bool] = []
    set_lease(db, "s", 3)
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=12, epoch=2))
    gateway.submit(reading(endpoint_id, 12, 1.0, results))
    drained(gateway)
    assert readings(db) == 1 and results == [True] and fence.counter.value == 0


def test_a_takeover_waits_for_a_batch_that_passed_the_check(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int]
) -> None:
    """The check locks the lease row FOR KEY SHARE: a takeover (FOR UPDATE) waits for the
    batch's commit, so no write of an old epoch commits after the new epoch exists."""
    import psycopg2

    gateway, fence, endpoint_id = setup
    inside = threading.Event()
    release = threading.Event()
    real = fence.refused

    def slow_refused(cursor: object, epochs: dict[str, int]) -> set[str]:
        out = real(cursor, epochs)
        inside.set()
        release.wait(10)
        return out

    fence.refused = slow_refused  # type: ignore[method-assign]
    results: list[bool] = []
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=13, epoch=2))
    gateway.submit(reading(endpoint_id, 13, 1.0, results))
    assert inside.wait(10)
    conn = psycopg2.connect(pg_url(), options=f"-csearch_path={db.fieldwatch_schema}")  # type: ignore[attr-defined]
    try:
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cur.execute(f"SELECT epoch FROM {LEASE_TABLE} WHERE site = 's' FOR UPDATE")
        conn.rollback()
        release.set()
        drained(gateway)
        with conn.cursor() as cur:
            cur.execute(f"SELECT epoch FROM {LEASE_TABLE} WHERE site = 's' FOR UPDATE")
            assert cur.fetchone()[0] == 2
        conn.rollback()
    finally:
        release.set()
        conn.close()
    assert results == [True] and readings(db) == 1


def test_a_writer_frozen_inside_its_transaction_does_not_keep_a_takeover_waiting(db: peewee.Database) -> None:
    """The check sets idle_in_transaction_session_timeout: the server ends a session that
    sits in the batch's transaction (a SIGSTOPped writer), releasing its lease locks."""
    import psycopg2

    from fieldwatch.cluster.schema import fenced_sites

    set_lease(db, "s", 2)
    options = f"-csearch_path={db.fieldwatch_schema}"  # type: ignore[attr-defined]
    frozen = psycopg2.connect(pg_url(), options=options, application_name=db.fieldwatch_schema)  # type: ignore[attr-defined]
    taker = psycopg2.connect(pg_url(), options=options, application_name=db.fieldwatch_schema)  # type: ignore[attr-defined]
    try:
        with frozen.cursor() as cur:
            assert fenced_sites(cur, {"s": 2}, idle_timeout_ms=300) == set()
        # `frozen` never commits: the takeover's FOR UPDATE SKIP LOCKED finds the row once the
        # server ended that session

        def free() -> bool:
            with taker.cursor() as cur:
                cur.execute(f"SELECT 1 FROM {LEASE_TABLE} WHERE site = 's' FOR UPDATE SKIP LOCKED")
                found = cur.fetchone() is not None
            taker.rollback()
            return found

        assert not free(), "the check did not lock the lease row"
        wait_for(free, 10, what="the frozen writer's session to be ended by the server")
        with pytest.raises(psycopg2.Error), frozen.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        frozen.close()
        taker.close()


def test_an_endpoint_row_never_goes_back_in_epoch(
    db: peewee.Database, setup: tuple[StorageGateway, EpochFence, int]
) -> None:
    """The second line: each endpoint row stores the epoch of its last writer and an UPDATE
    of an older epoch leaves it alone (shown with the lease check turned off)."""
    gateway, fence, endpoint_id = setup

    def state_change(generation: int, state: str) -> w.StateChange:
        return w.StateChange(endpoint_id=endpoint_id, generation=generation, state=state, since=1.0, reason=state,
                             down_since=None, last_data_at=None)  # fmt: skip

    def row() -> tuple[str, int | None]:
        state, epoch = db.execute_sql(
            "SELECT state, lease_epoch FROM endpoint WHERE id = %s", (endpoint_id,)
        ).fetchone()
        return str(state), epoch

    set_lease(db, "s", 3)
    gateway.submit(w.GenerationStarted(endpoint_id=endpoint_id, generation=20, epoch=3))
    gateway.submit(state_change(20, "up"))
    drained(gateway)
    assert row() == ("up", 3)
    fence.enabled = False  # an old epoch's write gets past the lease check...
    gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=21, state="down", since=2.0, reason="old",
                                 down_since=2.0, last_data_at=None, epoch=2))  # fmt: skip
    drained(gateway)
    assert row() == ("up", 3)  # ...and still does not move the row back
    gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=21, state="down", since=3.0, reason="new",
                                 down_since=3.0, last_data_at=None, epoch=4))  # fmt: skip
    drained(gateway)
    assert row() == ("down", 4)

