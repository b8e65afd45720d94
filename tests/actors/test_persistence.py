"""The persistence actor on SQLite and PostgreSQL: commands, order, generations, deletions."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import peewee
import pykka
import pytest

from fieldwatch.actors.persistence import PersistenceActor
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.errors import ConflictError, NotFoundError, StorageError
from fieldwatch.policy import Retry, StoragePolicy
from fieldwatch.storage import commands as c
from fieldwatch.storage import writes as w
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.testing import PG_ENV, pg_url, start_generation, temporary_database
from tests.storage.storage_helpers import ALL_RAW
from tests.waiting import wait_for

BACKENDS = [
    pytest.param("sqlite"),
    pytest.param("postgresql", marks=pytest.mark.skipif(pg_url() is None, reason=f"{PG_ENV} is not set")),
]
POLICY = StoragePolicy(retry=Retry(initial_s=0.05, max_s=0.5))


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[peewee.Database]:
    with temporary_database(str(request.param), tmp_path) as database:
        yield database
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


@pytest.fixture
def gateway(db: peewee.Database) -> StorageGateway:
    return StorageGateway(max_queue=10_000)


@pytest.fixture
def writer(gateway: StorageGateway, scheduler: Scheduler) -> Iterator[pykka.ActorRef[PersistenceActor]]:
    ref = PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
    yield ref
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


def drained(gateway: StorageGateway) -> None:
    wait_for(lambda: gateway.queue_depth == 0, 10, what="the queue to drain")


def spec(name: str, *endpoints: str, enabled: bool = True) -> c.SiteSpec:
    return c.SiteSpec(name, enabled, "{}", tuple(c.EndpointSpec(e, "icmp", True, '{"host": "h"}') for e in endpoints))


def ids(site: c.StoredSite) -> dict[str, int]:
    return {e.name: e.id for e in site.endpoints}


def scalar(db: peewee.Database, sql: str, *params: object) -> object:
    return db.execute_sql(sql.replace("?", db.param), params).fetchone()[0]


@pytest.mark.usefixtures("writer")
def test_sync_config_creates_updates_and_stored_enabled_wins(gateway: StorageGateway) -> None:
    first = gateway.command(c.SyncConfig([spec("a", "plc", "router"), spec("gone", "x")]))
    assert [s.name for s in first] == ["a", "gone"]
    assert all(s.origin == "config" for s in first)
    api = gateway.command(c.CreateSite(spec("api-site", "e1")))
    assert api.origin == "api"
    # an endpoint added through the API to a config site
    gateway.command(c.ReplaceSite(spec("a", "plc", "router", "extra")))
    gateway.command(c.SetSiteEnabled("a", False))
    gateway.command(c.SetEndpointEnabled("a", "plc", False))
    plc_id = ids(first[0])["plc"]

    again = {s.name: s for s in gateway.command(c.SyncConfig([spec("a", "plc")]))}
    assert set(again) == {"a", "api-site"}  # config site no longer declared: deleted; API site kept
    site = again["a"]
    assert site.enabled is False  # the stored flag wins over the YAML's initial value
    endpoints = {e.name: e for e in site.endpoints}
    assert set(endpoints) == {"plc", "extra"}  # config endpoint dropped, API endpoint kept
    assert endpoints["plc"].enabled is False and endpoints["plc"].id == plc_id
    assert endpoints["extra"].origin == "api"
    assert gateway.command(c.LoadSites()) == tuple(again[n] for n in sorted(again))


@pytest.mark.usefixtures("writer")
def test_commands_raise_not_found_and_conflict(gateway: StorageGateway) -> None:
    site = gateway.command(c.CreateSite(spec("s", "e")))
    with pytest.raises(ConflictError):
        gateway.command(c.CreateSite(spec("s")))
    with pytest.raises(ConflictError):
        gateway.command(c.CreateSite(spec("t", "dup", "dup")))
    for cmd in (
        c.SetSiteEnabled("nope", True),
        c.SetEndpointEnabled("s", "nope", True),
        c.SetEndpointEnabled("nope", "e", True),
        c.ReplaceSite(spec("nope")),
        c.DeleteSite("nope"),
        c.DeleteEndpoint(999_999),
        c.SetTopicActive(site.endpoints[0].id, "no/topic", True),
    ):
        with pytest.raises(NotFoundError):
            gateway.command(cmd)
    with pytest.raises(ValueError):
        gateway.command(c.CreateSite(c.SiteSpec("bad", True, "{not json")))
    assert [s.name for s in gateway.command(c.LoadSites())] == ["s"]


@pytest.mark.usefixtures("writer")
def test_replace_site_keeps_ids_and_deletes_missing(gateway: StorageGateway, db: peewee.Database) -> None:
    before = ids(gateway.command(c.CreateSite(spec("s", "keep", "drop"))))
    after = gateway.command(c.ReplaceSite(spec("s", "keep", "new", enabled=False)))
    assert after.enabled is False
    assert ids(after)["keep"] == before["keep"]
    assert set(ids(after)) == {"keep", "new"}
    assert scalar(db, "SELECT COUNT(*) FROM endpoint WHERE id = ?", before["drop"]) == 0


def test_command_without_writer_is_a_storage_error(gateway: StorageGateway) -> None:
    with pytest.raises(StorageError, match="not running"):
        gateway.command(c.LoadSites(), timeout_s=0.05)


@pytest.mark.usefixtures("writer")
def test_state_changes_keep_their_order_under_concurrent_writers(gateway: StorageGateway, db: peewee.Database) -> None:
    names = [f"e{i}" for i in range(6)]
    endpoint_ids = ids(gateway.command(c.CreateSite(spec("s", *names))))
    sequence = ["connecting", "up", "stale", "up", "down", "connecting", "up", "faulty"]
    per_endpoint = 120
    start = threading.Barrier(len(names))

    def actor(endpoint_id: int) -> None:
        generation = start_generation(gateway, endpoint_id)
        start.wait(timeout=5)
        for i in range(per_endpoint):
            state = sequence[i % len(sequence)]
            now = time.time()
            gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=generation, state=state, since=now, reason=f"step {i}", down_since=None, last_data_at=now))
            gateway.submit(w.EventRecord(endpoint_id=endpoint_id, generation=generation, time=now, level="info", event="state", message=f"{i}"))
            gateway.submit(
                w.ReadingRecord(
                    endpoint_id=endpoint_id,
                    generation=generation,
                    name="x",
                    value_num=float(i),
                    value_text=None,
                    quality="good",
                    source_time=None,
                    received_at=now,
                )
            )

    threads = [threading.Thread(target=actor, args=(endpoint_ids[n],)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    drained(gateway)
    last = per_endpoint - 1
    for endpoint_id in endpoint_ids.values():
        state, reason = db.execute_sql(
            f"SELECT state, reason FROM endpoint WHERE id = {db.param}", (endpoint_id,)
        ).fetchone()
        assert (state, reason) == (sequence[last % len(sequence)], f"step {last}")
        messages = db.execute_sql(
            f"SELECT message FROM event WHERE endpoint_id = {db.param} ORDER BY id", (endpoint_id,)
        ).fetchall()
        assert [int(m[0]) for m in messages] == list(range(per_endpoint))
    assert gateway.stats().writes_total == len(names) * (per_endpoint * 3 + 1)


@pytest.mark.usefixtures("writer")
def test_writes_of_an_older_generation_are_discarded(
    gateway: StorageGateway, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "plc"))))["plc"]
    old = start_generation(gateway, endpoint_id)
    gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=old, state="up", since=1.0, reason="ok", down_since=None, last_data_at=1.0))
    new = start_generation(gateway, endpoint_id)
    assert new > old
    acks: list[int] = []
    with caplog.at_level(logging.WARNING, logger="fieldwatch.storage.batch"):
        gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=new, state="connecting", since=2.0, reason="restarted", down_since=None, last_data_at=1.0))
        gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=old, state="up", since=3.0, reason="hung actor", down_since=None, last_data_at=3.0))  # must not win
        gateway.submit(
            w.ReadingRecord(
                endpoint_id=endpoint_id,
                generation=old,
                name="x",
                value_num=1.0,
                value_text=None,
                quality="good",
                source_time=None,
                received_at=3.0,
                on_commit=lambda _inserted: acks.append(1),
            )
        )
        drained(gateway)
    row = db.execute_sql(f"SELECT state, reason, generation FROM endpoint WHERE id = {db.param}", (endpoint_id,))
    assert row.fetchone() == ("connecting", "restarted", new)
    assert scalar(db, "SELECT COUNT(*) FROM reading") == 0
    assert acks == []  # a discarded reading is never acknowledged
    assert gateway.stats().discarded_total == 2
    warnings = [r for r in caplog.records if "generation" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


@pytest.mark.usefixtures("writer")
def test_writes_for_a_deleted_endpoint_are_discarded_and_logged_once(
    gateway: StorageGateway, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint_ids = ids(gateway.command(c.CreateSite(spec("s", "gone", "stays"))))
    gone = endpoint_ids["gone"]
    generation = start_generation(gateway, gone)
    gateway.submit(w.EventRecord(endpoint_id=gone, generation=generation, time=1.0, level="info", event="connected", message="before deletion"))
    gateway.command(c.DeleteEndpoint(gone))
    acks: list[int] = []
    with caplog.at_level(logging.DEBUG):
        for _round in range(3):  # several batches: still one log line
            for i in range(20):
                gateway.submit(w.StateChange(endpoint_id=gone, generation=generation, state="up", since=float(i), reason=None, down_since=None, last_data_at=None))
                gateway.submit(
                    w.ReadingRecord(
                        endpoint_id=gone,
                        generation=generation,
                        name="x",
                        value_num=1.0,
                        value_text=None,
                        quality="good",
                        source_time=None,
                        received_at=1.0,
                        on_commit=lambda _inserted: acks.append(1),
                    )
                )
            drained(gateway)
    lines = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert acks == []
    assert gateway.stats().discarded_total == 120
    row = db.execute_sql("SELECT site_name, endpoint_name, endpoint_id, message FROM event").fetchone()
    assert row == ("s", "gone", None, "before deletion")  # the log keeps its names
    assert gateway.stats().ready


@pytest.mark.usefixtures("writer")
def test_duplicate_msg_key_is_stored_once_and_still_acknowledged(gateway: StorageGateway, db: peewee.Database) -> None:
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "broker"))))["broker"]
    generation = start_generation(gateway, endpoint_id)
    acks: list[tuple[str, bool]] = []

    def reading(key: str, value: float) -> w.ReadingRecord:
        return w.ReadingRecord(
            endpoint_id=endpoint_id,
            generation=generation,
            name="t",
            value_num=value,
            value_text=None,
            quality="good",
            source_time=None,
            received_at=time.time(),
            device="dev",
            msg_key=key,
            on_commit=lambda inserted: acks.append(f"{key}:{inserted}"),
        )

    gateway.submit_many([reading("m1", 1.0), reading("m1", 2.0), reading("m2", 3.0)])  # same batch
    drained(gateway)
    gateway.submit(reading("m1", 4.0))  # a redelivery in a later batch
    drained(gateway)
    # every one is acknowledged; `inserted` tells the stored ones from the suppressed ones
    assert acks == ["m1:True", "m1:False", "m2:True", "m1:False"]
    rows = db.execute_sql("SELECT value_num FROM reading ORDER BY value_num").fetchall()
    assert rows == [(1.0,), (3.0,)]
    keys = db.execute_sql("SELECT msg_key FROM reading_key ORDER BY msg_key").fetchall()
    assert keys == [("m1",), ("m2",)]


@pytest.mark.usefixtures("writer")
def test_alerts_are_idempotent_per_condition_and_subject(gateway: StorageGateway, db: peewee.Database) -> None:
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "plc"))))["plc"]
    g = start_generation(gateway, endpoint_id)
    gateway.submit(w.AlertOpen(endpoint_id=endpoint_id, generation=g, condition="down", severity="critical", message="down", time=1.0))
    gateway.submit(w.AlertOpen(endpoint_id=endpoint_id, generation=g, condition="down", severity="critical", message="still down", time=2.0))
    drained(gateway)
    gateway.submit(w.AlertOpen(endpoint_id=endpoint_id, generation=g, condition="down", severity="critical", message="and again", time=3.0))
    gateway.submit(w.AlertOpen(endpoint_id=endpoint_id, generation=g, condition="threshold", severity="warning", message="level high", time=3.0, subject="level"))
    gateway.submit(w.AlertOpen(endpoint_id=endpoint_id, generation=g, condition="threshold", severity="warning", message="temp high", time=3.0, subject="temp"))
    drained(gateway)
    assert scalar(db, "SELECT COUNT(*) FROM alert WHERE resolved_at IS NULL") == 3
    assert scalar(db, "SELECT message FROM alert WHERE condition = 'down'") == "down"
    gateway.submit(w.AlertResolve(endpoint_id=endpoint_id, generation=g, condition="down", time=4.0))
    gateway.submit(w.AlertResolve(endpoint_id=endpoint_id, generation=g, condition="down", time=5.0))  # nothing active: no-op
    gateway.submit(w.AlertOpen(endpoint_id=endpoint_id, generation=g, condition="down", severity="critical", message="down again", time=6.0))
    drained(gateway)
    rows = db.execute_sql("SELECT message, resolved_at FROM alert WHERE condition = 'down' ORDER BY id").fetchall()
    assert rows == [("down", 4.0), ("down again", None)]


@pytest.mark.usefixtures("writer")
def test_a_row_the_database_refuses_does_not_block_the_queue(
    gateway: StorageGateway, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint_ids = ids(gateway.command(c.CreateSite(spec("s", "a", "b"))))
    g = {n: start_generation(gateway, i) for n, i in endpoint_ids.items()}
    drained(gateway)
    # deleted behind the writer's back (another instance): the writer still believes in it
    db.execute_sql(f"DELETE FROM endpoint WHERE id = {db.param}", (endpoint_ids["a"],))
    acks: list[str] = []
    with caplog.at_level(logging.WARNING):
        for name in ("a", "b", "a", "b"):
            ack = functools.partial(lambda n, _inserted: acks.append(n), name)
            reading = w.ReadingRecord(
                endpoint_id=endpoint_ids[name],
                generation=g[name],
                name="x",
                value_num=1.0,
                value_text=None,
                quality="good",
                source_time=None,
                received_at=1.0,
                on_commit=ack,
            )
            gateway.submit(reading)
        drained(gateway)
    assert scalar(db, "SELECT COUNT(*) FROM reading") == 2
    assert acks == ["b", "b"]
    assert gateway.stats().discarded_total == 2 and gateway.stats().ready
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_a_restarted_writer_takes_over_the_queue(
    gateway: StorageGateway, scheduler: Scheduler, db: peewee.Database
) -> None:
    ref = PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "e"))))["e"]
    generation = start_generation(gateway, endpoint_id)
    ref.stop()
    assert not gateway.stats().ready
    for i in range(500):  # nobody writes now: everything waits in the gateway
        gateway.submit(
            w.ReadingRecord(
                endpoint_id=endpoint_id,
                generation=generation,
                name="x",
                value_num=float(i),
                value_text=None,
                quality="good",
                source_time=None,
                received_at=1.0,
            )
        )
    assert gateway.queue_depth == 500
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
    drained(gateway)
    assert scalar(db, "SELECT COUNT(*) FROM reading") == 500
    assert gateway.stats().ready


def test_back_pressure_releases_when_the_writer_catches_up(scheduler: Scheduler, db: peewee.Database) -> None:
    gateway = StorageGateway(max_queue=100)
    for i in range(150):  # events are never refused, even past max_queue
        gateway.submit(w.EventRecord(endpoint_id=None, generation=0, time=float(i), level="info", event="x", message=""))
    assert gateway.wait_capacity(0.01) is False
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler)
    assert gateway.wait_capacity(10) is True
    drained(gateway)
    assert scalar(db, "SELECT COUNT(*) FROM event") == 150


@pytest.mark.usefixtures("writer")
def test_a_state_change_is_visible_to_readers_quickly(gateway: StorageGateway, db: peewee.Database) -> None:
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "e"))))["e"]
    generation = start_generation(gateway, endpoint_id)
    drained(gateway)
    start = time.monotonic()
    gateway.submit(w.StateChange(endpoint_id=endpoint_id, generation=generation, state="down", since=time.time(), reason="refused", down_since=time.time(), last_data_at=None))
    wait_for(
        lambda: scalar(db, "SELECT state FROM endpoint WHERE id = ?", endpoint_id) == "down",
        2,
        what="the state change to be readable",
    )
    # max_delay_ms (50) plus commit time, with slack for a loaded CI machine
    assert time.monotonic() - start < 0.5


@pytest.mark.usefixtures("writer")
def test_topics_can_be_switched_off_and_on(gateway: StorageGateway, db: peewee.Database) -> None:
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "broker"))))["broker"]
    g = start_generation(gateway, endpoint_id)
    gateway.submit(w.TopicSeen(endpoint_id=endpoint_id, generation=g, topic="a/b", time=1.0, count=3, is_processable=True))
    # no drain: the command commits the writes queued before it
    assert gateway.command(c.SetTopicActive(endpoint_id, "a/b", False)) is True
    assert gateway.command(c.SetTopicActive(endpoint_id, "a/b", False)) is False
    assert scalar(db, "SELECT is_active FROM topic") in (False, 0)
    assert gateway.command(c.SetTopicActive(endpoint_id, "a/b", True)) is True


@pytest.mark.usefixtures("writer")
def test_on_commit_tells_each_reading_whether_it_was_inserted(gateway: StorageGateway, db: peewee.Database) -> None:
    """msg_key suppresses a reading per row (same batch or a later one, per endpoint); no key: always inserted."""
    endpoint_ids = ids(gateway.command(c.CreateSite(spec("s", "a", "b"))))
    a, b = endpoint_ids["a"], endpoint_ids["b"]
    ga, gb = start_generation(gateway, a), start_generation(gateway, b)
    seen: list[tuple[str, bool]] = []

    def reading(endpoint_id: int, generation: int, label: str, key: str | None) -> w.ReadingRecord:
        def on_commit(inserted: bool) -> None:
            seen.append((label, inserted))

        return w.ReadingRecord(endpoint_id=endpoint_id, generation=generation, name="x", value_num=1.0,
                               quality="good", received_at=1.0, msg_key=key, on_commit=on_commit)

    gateway.submit_many([
        reading(a, ga, "a-k1", "k1"), reading(a, ga, "a-none-1", None), reading(a, ga, "a-k1-again", "k1"),
        reading(b, gb, "b-k1", "k1"), reading(a, ga, "a-none-2", None), reading(a, ga, "a-k2", "k2"),
    ])
    drained(gateway)
    gateway.submit_many([reading(a, ga, "a-k2-later", "k2"), reading(a, ga, "a-k3", "k3")])
    drained(gateway)
    assert seen == [("a-k1", True), ("a-none-1", True), ("a-k1-again", False), ("b-k1", True),
                    ("a-none-2", True), ("a-k2", True), ("a-k2-later", False), ("a-k3", True)]
    assert scalar(db, "SELECT COUNT(*) FROM reading") == 6


def test_the_writer_stores_closed_rollup_buckets_and_its_successor_those_open_at_its_start(
    gateway: StorageGateway, scheduler: Scheduler, db: peewee.Database
) -> None:
    from fieldwatch.storage import queries

    t0 = 1_764_000_000.0  # an hour's start
    clock = [t0 + 30.0]
    ref = PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "e"))))["e"]
    generation = start_generation(gateway, endpoint_id)

    def reading(t: float, value: float) -> w.ReadingRecord:
        return w.ReadingRecord(
            endpoint_id=endpoint_id, generation=generation, name="x", value_num=value, source_time=t, received_at=t
        )

    def buckets(step: int) -> list[tuple[str, int, float]]:
        items = queries.readings(step=step, since=t0, until=t0 + 7200, limit=100)[0]
        return [(b["time"], b["count"], b["last"]) for b in items]

    gateway.submit_many([reading(t0 + 10, 1.0), reading(t0 + 20, 2.0)])
    drained(gateway)
    assert scalar(db, "SELECT COUNT(*) FROM rollup_1m") == 0  # the minute is open: not stored yet
    assert [(n, last) for _t, n, last in buckets(60)] == [(2, 2.0)]  # answered from the raw rows
    clock[0] = t0 + 70.0  # the first minute closed (and its grace passed)
    gateway.submit(reading(t0 + 65, 3.0))
    drained(gateway)
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM rollup_1m") == 1, 10, what="the closed minute stored")
    assert scalar(db, "SELECT n FROM rollup_1m") == 2
    assert [(n, last) for _t, n, last in buckets(60)] == [(1, 3.0), (2, 2.0)]
    ref.stop()  # the open minute (t0 + 60) was never stored
    clock[0] = t0 + 200.0
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    gateway.submit(reading(t0 + 190, 4.0))
    drained(gateway)
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM rollup_1m") == 2, 10, what="the minute open at the restart stored")
    assert [(n, last) for _t, n, last in buckets(60)] == [(1, 4.0), (1, 3.0), (2, 2.0)]
    assert [(n, last) for _t, n, last in buckets(3600)] == [(4, 4.0)]
    assert scalar(db, "SELECT COUNT(*) FROM rollup_1h") == 0  # the hour is still open


def test_open_rollup_buckets_of_a_deleted_endpoint_are_dropped_not_stored(
    gateway: StorageGateway, scheduler: Scheduler, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = 1_764_000_000.0
    clock = [t0 + 30.0]
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    site = ids(gateway.command(c.CreateSite(spec("s", "gone", "kept"))))
    generation = start_generation(gateway, site["gone"])
    start_generation(gateway, site["kept"])
    for name, value in (("gone", 1.0), ("kept", 2.0)):
        gateway.submit(
            w.ReadingRecord(endpoint_id=site[name], generation=generation + (name == "kept"), name="x",
                            value_num=value, source_time=t0 + 10, received_at=t0 + 10)  # fmt: skip
        )
    drained(gateway)
    gateway.command(c.ReplaceSite(spec("s", "kept")))  # deletes "gone" and its rows
    clock[0] = t0 + 70.0
    gateway.submit(
        w.ReadingRecord(endpoint_id=site["kept"], generation=generation + 1, name="x", value_num=3.0,
                        source_time=t0 + 65, received_at=t0 + 65)  # fmt: skip
    )
    drained(gateway)
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM rollup_1m") == 1, 10, what="the closed minute stored")
    assert scalar(db, "SELECT v_sum FROM rollup_1m") == 2.0
    assert not [r for r in caplog.records if "rollup" in r.getMessage() and r.levelno >= logging.WARNING]


def test_a_deleted_endpoints_staged_rows_never_reach_an_endpoint_created_after_it(
    gateway: StorageGateway, writer: pykka.ActorRef[PersistenceActor], db: peewee.Database
) -> None:
    """On SQLite new rows wait in reading_recent; a deleted endpoint's are dropped with it. The
    next series may take the deleted one's id (the highest): it must start empty."""
    site = ids(gateway.command(c.CreateSite(spec("s", "kept", "gone"))))
    for name in ("kept", "gone"):  # "gone" gets the highest series id
        generation = start_generation(gateway, site[name])
        gateway.submit(
            w.ReadingRecord(endpoint_id=site[name], generation=generation, name="x", value_num=1.0,
                            received_at=1_764_000_000.0)  # fmt: skip
        )
        drained(gateway)
    gateway.command(c.ReplaceSite(spec("s", "kept", "new")))  # deletes "gone" (and its staged row)
    new = ids(gateway.command(c.ReplaceSite(spec("s", "kept", "new"))))["new"]
    generation = start_generation(gateway, new)
    gateway.submit(
        w.ReadingRecord(endpoint_id=new, generation=generation, name="x", value_num=2.0, received_at=1_764_000_001.0)
    )
    drained(gateway)
    rows = db.execute_sql(
        f"SELECT r.value FROM {ALL_RAW} r JOIN series s ON s.id = r.series_id WHERE s.endpoint_id = {int(new)}"
    ).fetchall()
    assert [tuple(r) for r in rows] == [(2.0,)]
    assert scalar(db, f"SELECT COUNT(*) FROM {ALL_RAW} r") == 2  # kept's and new's


class _Successor(pykka.ThreadingActor):
    """Stands for the writer the supervisor started in place of a hung one (it never writes)."""

    def on_receive(self, message: object) -> None:
        return None


def test_a_replaced_writer_commits_nothing_and_its_batch_is_written_once(
    gateway: StorageGateway, scheduler: Scheduler, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    from fieldwatch.storage import queries
    from fieldwatch.storage.gateway import Wake

    t0 = 1_764_000_000.0
    clock = [t0 + 30.0]
    old = PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "e"))))["e"]
    generation = start_generation(gateway, endpoint_id)
    drained(gateway)
    successor = _Successor.start()
    gateway.attach(successor)  # the supervisor replaced `old` (hung): the queue is the successor's now
    readings = [
        w.ReadingRecord(endpoint_id=endpoint_id, generation=generation, name="x", value_num=float(i),
                        source_time=t0 + i, received_at=t0 + i)  # fmt: skip
        for i in range(20)
    ]
    gateway.submit_many(readings)
    with caplog.at_level(logging.WARNING):
        old.tell(Wake())  # `old` wakes up and drains a batch it no longer owns
        wait_for(lambda: "replaced before committing" in caplog.text, 10, what="the old writer to give up")
    assert scalar(db, f"SELECT COUNT(*) FROM {ALL_RAW} r") == 0  # rolled back
    assert gateway.queue_depth == 20  # still queued, for the successor
    old.stop()
    successor.stop()
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    drained(gateway)
    assert scalar(db, f"SELECT COUNT(*) FROM {ALL_RAW} r") == 20  # once, not twice
    items = queries.readings(step=60, since=t0, until=t0 + 120, limit=10)[0]
    assert [b["count"] for b in items] == [20]  # the rollup counts exactly the raw rows


def test_a_replaced_writer_stores_no_closed_rollup_bucket_and_its_successor_does(
    gateway: StorageGateway, scheduler: Scheduler, db: peewee.Database
) -> None:
    """A writer replaced by another (a hung one) must not flush closed buckets or move the marks:
    its successor read the marks at its start and stores them; two flushes would count twice."""
    t0 = 1_764_000_000.0
    clock = [t0 + 30.0]
    old = PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    endpoint_id = ids(gateway.command(c.CreateSite(spec("s", "e"))))["e"]
    generation = start_generation(gateway, endpoint_id)
    gateway.submit(w.ReadingRecord(endpoint_id=endpoint_id, generation=generation, name="x", value_num=1.0,
                                   source_time=t0 + 10, received_at=t0 + 10))  # fmt: skip
    drained(gateway)
    marks = db.execute_sql("SELECT tier, complete_before FROM rollup_mark ORDER BY tier").fetchall()
    successor = _Successor.start()
    gateway.attach(successor)  # the supervisor replaced `old`
    clock[0] = t0 + 70.0  # the first minute closed: a flush is due
    old.stop()  # stopping flushes what closed, if it is still the writer
    successor.stop()
    assert scalar(db, "SELECT COUNT(*) FROM rollup_1m") == 0
    assert db.execute_sql("SELECT tier, complete_before FROM rollup_mark ORDER BY tier").fetchall() == marks
    PersistenceActor.start(gateway, policy=POLICY, scheduler=scheduler, clock=lambda: clock[0])
    gateway.submit(w.ReadingRecord(endpoint_id=endpoint_id, generation=generation, name="x", value_num=2.0,
                                   source_time=t0 + 65, received_at=t0 + 65))  # fmt: skip
    drained(gateway)
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM rollup_1m") == 1, 10, what="the closed minute stored once")
    assert (scalar(db, "SELECT n FROM rollup_1m"), scalar(db, "SELECT v_sum FROM rollup_1m")) == (1, 1.0)
