"""The cluster view and metrics read from the real PostgreSQL cluster tables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from fieldwatch.cluster import LeaseManager
from fieldwatch.cluster.view import ClusterCollector, DatabaseCluster, FencedWrites
from tests.waiting import wait_for

TTL = 5.0
SITES = [f"site-{i:02d}" for i in range(6)]


@pytest.fixture()
def pair(pg_schema: tuple[str, str]) -> Iterator[tuple[LeaseManager, LeaseManager]]:
    dsn, schema = pg_schema
    a = LeaseManager(dsn, "a", TTL, schema=schema)
    a.start()
    a.declare_sites(SITES)
    wait_for(lambda: len(a.owned()) == len(SITES), timeout=2 * TTL, what="a owns all")
    b = LeaseManager(dsn, "b", TTL, schema=schema)
    b.start()
    wait_for(lambda: b.owned() and len(a.owned()) + len(b.owned()) == len(SITES), timeout=4 * TTL,
             what="b gets its share")
    yield a, b
    a.stop(release=False)
    b.stop(release=False)


def test_snapshot_lists_both_instances_their_sites_and_epochs(
        pair: tuple[LeaseManager, LeaseManager], pg_schema: tuple[str, str]) -> None:
    a, b = pair
    view = DatabaseCluster(pg_schema[0], a, schema=pg_schema[1])
    snap = view.snapshot()
    instances = {i["name"]: i for i in snap["instances"]}
    assert set(instances) == {"a", "b"} and all(i["live"] for i in instances.values())
    assert sorted(instances["a"]["sites"]) == sorted(a.owned())
    assert sorted(instances["b"]["sites"]) == sorted(b.owned())
    epochs = {**a.owned(), **b.owned()}
    assert {s["site"]: s["epoch"] for s in snap["sites"]} == epochs
    assert all(s["expires_at"] for s in snap["sites"])
    site_b = next(iter(b.owned()))
    assert view.owner_of(site_b) == "b" and view.owner_of(next(iter(a.owned()))) == "a"


def test_a_stopped_instance_claims_nothing_though_its_leases_have_not_expired(
        pair: tuple[LeaseManager, LeaseManager], pg_schema: tuple[str, str]) -> None:
    a, b = pair
    had = sorted(a.owned())
    view = DatabaseCluster(pg_schema[0], a, schema=pg_schema[1])
    registry = CollectorRegistry()
    fenced = FencedWrites()
    registry.register(ClusterCollector(view, lambda: SITES, fenced, a))
    assert all(registry.get_sample_value("fieldwatch_site_owned", {"site": s}) == 1.0 for s in had)
    assert all(registry.get_sample_value("fieldwatch_site_owned", {"site": s}) == 0.0
               for s in SITES if s not in had)
    a.stop(release=False)  # the database still shows a's leases until they expire
    snap = view.snapshot()
    assert all(s["owner"] is None for s in snap["sites"] if s["site"] in had)
    assert all(view.owner_of(s) is None for s in had)
    assert all(registry.get_sample_value("fieldwatch_site_owned", {"site": s}) == 0.0 for s in had)
    fenced.add(3)
    assert registry.get_sample_value("fieldwatch_storage_fenced_writes_total") == 3.0
    assert registry.get_sample_value("fieldwatch_lease_renew_failures_total") == 0.0
