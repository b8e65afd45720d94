"""Fencing with real processes (SPEC section 10): a frozen owner's queued writes never commit.

Two `fieldwatch run` instances on the test PostgreSQL. The owner's writer is caught with a
batch in flight (the test holds a lock on `reading_raw`, so every writer's INSERT waits
inside its transaction), the owner is frozen (SIGSTOP) and the lock released: the server
ends the frozen writer's idle transaction, the other instance takes the sites over, and
when the owner resumes (SIGCONT) its writer retries the batch and the database refuses it:
no reading of the frozen owner is committed after the takeover, and its
fieldwatch_storage_fenced_writes_total grows. With fencing turned off the same test fails
(the resumed writer commits its batch: run once by hand, see docs/cluster.md).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.cluster.daemon_cluster import SITES, Instance, stop_all, storage_url
from tests.waiting import wait_for

TTL = 5.0


@pytest.fixture()
def pair(pg_schema: tuple[str, str], tmp_path: Path) -> Iterator[list[Instance]]:
    dsn, schema = pg_schema
    url = storage_url(dsn, schema)
    instances: list[Instance] = []
    try:
        instances.append(Instance(str(tmp_path / "a"), "a", url, TTL).start(timeout=60))
        instances.append(Instance(str(tmp_path / "b"), "b", url, TTL).start(timeout=60))
        yield instances
    finally:
        stop_all(instances)


def metric(inst: Instance, name: str) -> float:
    for line in inst.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics of {inst.name}")


def settled(instances: list[Instance]) -> bool:
    owned = [set(i.owned()) for i in instances]
    running = [i.running() for i in instances]
    return owned == running and all(owned) and set().union(*owned) == set(SITES) and not owned[0] & owned[1]


def readings_before(cur: object, sites: list[str], t_ms: int) -> int:
    cur.execute(  # type: ignore[attr-defined]
        "SELECT count(*) FROM reading_raw r JOIN series x ON x.id = r.series_id JOIN endpoint e ON e.id = x.endpoint_id "
        "JOIN site s ON s.id = e.site_id WHERE s.name = ANY(%s) AND r.t <= %s",
        (sites, t_ms),
    )
    return int(cur.fetchone()[0])  # type: ignore[attr-defined]


def test_a_frozen_owner_with_a_batch_in_flight_commits_nothing_after_the_takeover(
    pair: list[Instance], pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    wait_for(lambda: settled(pair), timeout=6 * TTL, interval=0.2, what="the sites spread over both instances")
    victim = max(pair, key=lambda i: len(i.owned()))
    other = next(i for i in pair if i is not victim)
    lost = victim.owned()
    sites = sorted(lost)
    conn = psycopg2.connect(dsn, options=f"-csearch_path={schema}", application_name=f"test-{schema}")
    conn.autocommit = True
    locker = psycopg2.connect(dsn, options=f"-csearch_path={schema}", application_name=f"test-{schema}")
    try:
        with conn.cursor() as cur:
            wait_for(lambda: readings_before(cur, sites, 2**62) > 0, 15, what="the owner storing readings")
            # every writer's next INSERT into reading_raw waits inside its transaction
            with locker.cursor() as lock:
                lock.execute("LOCK TABLE reading_raw IN EXCLUSIVE MODE")

            def writers_waiting() -> int:
                cur.execute(
                    "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND relation = 'reading_raw'::regclass"
                )
                return int(cur.fetchone()[0])

            wait_for(lambda: writers_waiting() >= 2, 15, what="both writers waiting with a batch in flight")
            victim.frozen = True
            victim.signal(signal.SIGSTOP)
            stopped_ms = int(time.time() * 1000)
            locker.commit()  # the frozen writer's INSERT completes; its transaction stays open
            fault = time.monotonic()

            def taken() -> bool:
                owned, running = other.owned(), other.running()
                return all(site in owned and site in running for site in sites)

            wait_for(taken, timeout=TTL + 15, interval=0.1, what=f"{sites} running on the other instance")
            print(f"frozen with a batch in flight: {sites} taken over after {time.monotonic() - fault:.2f}s")
            cur.execute("SELECT site, epoch FROM site_lease WHERE site = ANY(%s)", (sites,))
            epochs = dict(cur.fetchall())
            assert all(epochs[site] > lost[site] for site in sites)
            before = readings_before(cur, sites, stopped_ms)
            cur.execute("SELECT coalesce(max(id), 0) FROM event")
            last_event = cur.fetchone()[0]

            victim.signal(signal.SIGCONT)
            victim.frozen = False
            # its writer retries the batch (its session was ended meanwhile) until its queue is empty
            wait_for(lambda: metric(victim, "fieldwatch_storage_queue_depth") == 0, 30, what="the resumed queue empty")
            after = readings_before(cur, sites, stopped_ms)
            assert after == before, f"{after - before} readings of the frozen owner committed after the takeover"
            cur.execute(
                "SELECT count(*) FROM event v JOIN endpoint e ON e.id = v.endpoint_id JOIN site s ON s.id = e.site_id "
                "WHERE v.id > %s AND s.name = ANY(%s) AND v.generation < e.generation",
                (last_event, sites),
            )
            assert cur.fetchone()[0] == 0, "events of the former owner's generations committed after the takeover"
            fenced = metric(victim, "fieldwatch_storage_fenced_writes_total")
            print(f"resumed: {fenced:.0f} writes fenced")
            assert fenced > 0
            assert "refusing writes for site" in victim.output()
            cur.execute("SELECT site, epoch FROM site_lease WHERE site = ANY(%s)", (sites,))
            assert all(epoch >= epochs[site] for site, epoch in cur.fetchall())
    finally:
        locker.close()
        conn.close()
