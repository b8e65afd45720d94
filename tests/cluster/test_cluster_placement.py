"""Unit tests of site placement (pure logic): rendezvous hashing and the per-scan plan."""

from __future__ import annotations

from fieldwatch.cluster.placement import LeaseRow, plan_scan, preferred_owner

SITES = [f"site-{i:03d}" for i in range(300)]


def test_no_instance_no_owner() -> None:
    assert preferred_owner("s", []) is None


def test_sites_spread_over_instances() -> None:
    counts = {"a": 0, "b": 0, "c": 0}
    for site in SITES:
        counts[preferred_owner(site, counts)] += 1  # type: ignore[index]
    assert all(70 <= n <= 130 for n in counts.values()), counts


def test_a_leaving_instance_moves_only_its_own_sites() -> None:
    before = {site: preferred_owner(site, ["a", "b", "c"]) for site in SITES}
    after = {site: preferred_owner(site, ["a", "b"]) for site in SITES}
    moved = [site for site in SITES if before[site] != after[site]]
    assert moved and all(before[site] == "c" for site in moved)


def test_a_joining_instance_takes_only_its_share() -> None:
    before = {site: preferred_owner(site, ["a", "b"]) for site in SITES}
    after = {site: preferred_owner(site, ["a", "b", "c"]) for site in SITES}
    moved = [site for site in SITES if before[site] != after[site]]
    assert all(after[site] == "c" for site in moved)
    assert 70 <= len(moved) <= 130


def test_order_of_instances_does_not_matter() -> None:
    assert all(preferred_owner(s, ["a", "b", "c"]) == preferred_owner(s, ["c", "a", "b"]) for s in SITES)


def test_free_leases_preferred_here_are_taken_without_cap() -> None:
    rows = [LeaseRow(site=s, owner=None, epoch=0, held=False) for s in SITES]
    plan = plan_scan("a", rows, ["a", "b"], max_moves=2)
    expected = {s for s in SITES if preferred_owner(s, ["a", "b"]) == "a"}
    assert set(plan.take) == expected and len(expected) > 2
    assert plan.release == ()


def test_free_leases_preferred_elsewhere_are_left_unless_orphaned() -> None:
    other = next(s for s in SITES if preferred_owner(s, ["a", "b"]) == "b")
    rows = [LeaseRow(site=other, owner="b", epoch=4, held=False)]
    assert plan_scan("a", rows, ["a", "b"], max_moves=8).take == {}
    orphan = [LeaseRow(site=other, owner="b", epoch=4, held=False, orphaned=True)]
    assert plan_scan("a", orphan, ["a", "b"], max_moves=8).take == {other: 4}


def test_held_leases_are_never_taken() -> None:
    rows = [LeaseRow(site=s, owner="b", epoch=1, held=True) for s in SITES]
    assert plan_scan("a", rows, ["a"], max_moves=8).take == {}


def test_join_hands_over_at_most_max_moves_per_scan() -> None:
    rows = [LeaseRow(site=s, owner="a", epoch=1, held=True) for s in SITES]
    plan = plan_scan("a", rows, ["a", "b"], max_moves=5)
    assert len(plan.release) == 5
    assert all(preferred_owner(s, ["a", "b"]) == "b" for s in plan.release)


def test_nothing_is_handed_over_when_alone() -> None:
    rows = [LeaseRow(site=s, owner="a", epoch=1, held=True) for s in SITES]
    assert plan_scan("a", rows, [], max_moves=5).release == ()
