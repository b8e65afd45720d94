"""Lease managers in one process on the real PostgreSQL: placement, takeover, fencing, stalls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg2
import pytest

from fieldwatch.cluster import LEASE_TABLE, LeaseManager, fenced, fenced_sites, preferred_owner
from tests.cluster.cluster_helpers import Sampler, assert_never_owned_twice
from tests.waiting import wait_for

TTL = 5.0
SITES = [f"site-{i:02d}" for i in range(12)]

Factory = Callable[..., LeaseManager]


class Events:
    """Records (monotonic time, kind, site, epoch) from a manager's callbacks."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, str, int]] = []
        self.lock = threading.Lock()

    def acquired(self, site: str, epoch: int) -> None:
        with self.lock:
            self.items.append((time.monotonic(), "acquired", site, epoch))

    def lost(self, site: str, epoch: int) -> None:
        with self.lock:
            self.items.append((time.monotonic(), "lost", site, epoch))

    def of(self, kind: str) -> list[tuple[float, str, str, int]]:
        with self.lock:
            return [item for item in self.items if item[1] == kind]


@pytest.fixture()
def make(pg_schema: tuple[str, str]) -> Iterator[Factory]:
    """Builds started lease managers on the test schema; stops them all at teardown."""
    dsn, schema = pg_schema
    made: list[LeaseManager] = []

    def factory(name: str, events: Events | None = None, max_moves: int = 8,
                sites: list[str] = SITES) -> LeaseManager:
        events = events or Events()
        manager = LeaseManager(dsn, name, TTL, schema=schema, max_moves=max_moves,
                               on_acquired=events.acquired, on_lost=events.lost)
        manager.start()
        manager.declare_sites(sites)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        manager.stop(release=False)


def _connect(pg_schema: tuple[str, str]) -> psycopg2.extensions.connection:
    dsn, schema = pg_schema
    return psycopg2.connect(dsn, options=f"-c search_path={schema}", application_name=f"test@{schema}")


def _all_owned_once(*managers: LeaseManager) -> bool:
    owned = [site for m in managers for site in m.owned()]
    return sorted(owned) == SITES


def test_every_site_is_owned_once_and_spread_over_two_instances(make: Factory) -> None:
    a, b = make("a"), make("b")
    with Sampler(lambda: (a, b)) as sampler:
        wait_for(lambda: _all_owned_once(a, b) and len(b.owned()) > 0 and len(a.owned()) > 0,
                 timeout=3 * TTL, what="sites spread over a and b")
        wait_for(lambda: all(preferred_owner(s, ["a", "b"]) == "b" for s in b.owned())
                 and all(preferred_owner(s, ["a", "b"]) == "a" for s in a.owned())
                 and _all_owned_once(a, b), timeout=3 * TTL, what="rendezvous placement")
        wait_for(lambda: len(sampler.samples) > 10, timeout=5)
    assert assert_never_owned_twice(sampler.samples) >= len(SITES)


def test_fencing_check_refuses_all_but_the_current_epoch(make: Factory, pg_schema: tuple[str, str]) -> None:
    a = make("a")
    wait_for(lambda: len(a.owned()) == len(SITES), timeout=2 * TTL, what="a owns all")
    site, epoch = sorted(a.owned().items())[0]
    conn = _connect(pg_schema)
    try:
        with conn, conn.cursor() as cur:
            assert fenced(cur, site, epoch) is False
            assert fenced(cur, site, epoch - 1) is True
            assert fenced(cur, site, epoch + 1) is True
            assert fenced(cur, "no-such-site", 1) is True
            (s1, e1), (s2, e2) = sorted(a.owned().items())[1:3]
            batch = {site: epoch, s1: e1, s2: e2 + 1, "no-such-site": 1}
            assert fenced_sites(cur, batch) == {s2, "no-such-site"}
            assert fenced_sites(cur, {}) == set()
        a.stop(release=True)  # a drain: the lease is handed back at once
        with conn, conn.cursor() as cur:
            assert fenced(cur, site, epoch) is True
    finally:
        conn.close()


def test_crashed_owner_is_taken_over_within_ttl_plus_5_s(make: Factory, pg_schema: tuple[str, str]) -> None:
    a = make("a")
    wait_for(lambda: len(a.owned()) == len(SITES), timeout=2 * TTL, what="a owns all")
    old = a.owned()
    b = make("b")
    # Crash of a's lease threads: no more renewals, nothing released.
    a.stop(release=False)
    stopped = time.monotonic()
    wait_for(lambda: len(b.owned()) == len(SITES), timeout=TTL + 5, what="b takes every site")
    took = time.monotonic() - stopped
    assert took <= TTL + 5
    assert all(b.owned()[site] == old[site] + 1 for site in SITES)
    conn = _connect(pg_schema)
    try:
        with conn, conn.cursor() as cur:
            assert all(fenced(cur, site, epoch) for site, epoch in old.items())
    finally:
        conn.close()


def test_takeover_waits_for_a_write_that_passed_the_fencing_check(
        make: Factory, pg_schema: tuple[str, str]) -> None:
    a = make("a")
    wait_for(lambda: len(a.owned()) == len(SITES), timeout=2 * TTL, what="a owns all")
    site, epoch = sorted(a.owned().items())[0]
    writer = _connect(pg_schema)
    try:
        cur = writer.cursor()
        assert fenced(cur, site, epoch) is False  # the writer's transaction now holds the row
        b = make("b")
        a.stop(release=False)
        # Long after the lease expired, b still cannot take this one site while the write is open...
        wait_for(lambda: len(b.owned()) == len(SITES) - 1, timeout=TTL + 5, what="b takes the others")
        time.sleep(2)  # a negative: nothing to poll for; the write stays open for this long
        assert site not in b.owned()
        writer.commit()  # ...and takes it as soon as the write committed
        wait_for(lambda: site in b.owned(), timeout=5, what="b takes the site after the commit")
        with writer, writer.cursor() as cur2:
            assert fenced(cur2, site, epoch) is True
    finally:
        writer.close()


def test_drain_hands_sites_over_at_once(make: Factory) -> None:
    a = make("a")
    wait_for(lambda: len(a.owned()) == len(SITES), timeout=2 * TTL, what="a owns all")
    b = make("b")
    a.stop(release=True)
    drained = time.monotonic()
    wait_for(lambda: len(b.owned()) == len(SITES), timeout=TTL, what="b takes the drained sites")
    assert time.monotonic() - drained < TTL / 2  # well before the leases could have expired


def test_a_join_moves_only_the_joiners_share_without_double_ownership(make: Factory) -> None:
    events_a = Events()
    a = make("a", events_a, max_moves=2)
    wait_for(lambda: len(a.owned()) == len(SITES), timeout=2 * TTL, what="a owns all")
    managers = [a]
    with Sampler(lambda: managers) as sampler:
        b = make("b", max_moves=2)
        managers.append(b)
        share = {s for s in SITES if preferred_owner(s, ["a", "b"]) == "b"}
        wait_for(lambda: set(b.owned()) == share and _all_owned_once(a, b), timeout=4 * TTL,
                 what="b gets its share")
        wait_for(lambda: any(s.name == "b" and set(s.owned) == share for s in list(sampler.samples)),
                 timeout=5, what="the sampler to see b's share")
    assert {site for _, _, site, _ in events_a.of("lost")} == share
    assert assert_never_owned_twice(sampler.samples) >= len(SITES) + len(share)


def test_a_stalled_database_demotes_the_owner_and_nobody_takes_over(
        make: Factory, pg_schema: tuple[str, str]) -> None:
    events_a, events_b = Events(), Events()
    a, b = make("a", events_a), make("b", events_b)
    wait_for(lambda: _all_owned_once(a, b) and a.owned() and b.owned(), timeout=3 * TTL, what="spread")
    locker = _connect(pg_schema)
    try:
        with Sampler(lambda: (a, b)) as sampler:
            cur = locker.cursor()
            cur.execute(f"LOCK TABLE {LEASE_TABLE} IN ACCESS EXCLUSIVE MODE")
            locked = time.monotonic()
            cur.execute(f"SELECT site, owner_name, epoch FROM {LEASE_TABLE} ORDER BY site")
            before = cur.fetchall()
            wait_for(lambda: not a.owned() and not b.owned(), timeout=TTL, what="both demote")
            demoted = time.monotonic() - locked
            time.sleep(TTL + 2 - (time.monotonic() - locked))  # hold the lock past the lease
            cur.execute(f"SELECT site, owner_name, epoch FROM {LEASE_TABLE} ORDER BY site")
            during = cur.fetchall()
            held_for = time.monotonic() - locked
            locker.commit()
            released = time.monotonic()
            wait_for(lambda: _all_owned_once(a, b), timeout=TTL + 5, what="sites owned again")
    finally:
        locker.close()
    assert held_for > TTL
    assert during == before  # nobody took over while the lease table was locked
    assert demoted < TTL  # by the owner's own clock, before the database could expire a lease
    lost = events_a.of("lost") + events_b.of("lost")
    assert {site for _, _, site, _ in lost} == set(SITES)
    assert all(t - locked < TTL for t, _, _, _ in lost)
    claimed_during = [s for s in sampler.samples if locked + demoted < s.t < released and s.owned]
    assert claimed_during == []
    # Renewals kept failing fast (lock_timeout) instead of hanging for the whole lock.
    assert a.renew_failures >= 2 and b.renew_failures >= 2
    new = {**a.owned(), **b.owned()}
    assert all(new[site] > epoch for site, _, epoch in before)
    assert_never_owned_twice(sampler.samples)


def test_a_second_process_with_the_same_instance_name_makes_the_first_give_up(
        make: Factory, pg_schema: tuple[str, str]) -> None:
    events_old = Events()
    old = make("a", events_old)
    wait_for(lambda: len(old.owned()) == len(SITES), timeout=2 * TTL, what="the first a owns all")
    epochs = old.owned()
    new = make("a")  # same name, new boot id: the instance row now names the new boot
    wait_for(lambda: not old.owned(), timeout=TTL, what="the first a gives its leases up")
    assert {site for _, _, site, _ in events_old.of("lost")} == set(SITES)
    wait_for(lambda: len(new.owned()) == len(SITES), timeout=TTL + 5, what="the new a takes them over")
    assert all(new.owned()[site] == epochs[site] + 1 for site in SITES)
    conn = _connect(pg_schema)
    try:
        with conn, conn.cursor() as cur:
            assert all(fenced(cur, site, epoch) for site, epoch in epochs.items())
    finally:
        conn.close()
