"""Three `fieldwatch run` processes on one PostgreSQL (SPEC section 10): sites spread, a SIGKILLed
or SIGSTOPped owner's sites run elsewhere within lease_ttl_s + 5 s, a resumed instance demotes
itself, a command sent to a non-owner is applied by the owner, no site is ever owned twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fieldwatch.cluster.placement import preferred_owner
from tests.cluster.cluster_helpers import assert_never_owned_twice
from tests.cluster.daemon_cluster import SITES, HttpSampler, Instance, stop_all, storage_url
from tests.waiting import wait_for

TTL = 5.0

Spawn = Callable[[str], Instance]


@pytest.fixture()
def cluster(pg_schema: tuple[str, str], tmp_path: Path) -> Iterator[list[Instance]]:
    """Three instances a, b, c on the test schema (storage migrated by the first), started and ready."""
    dsn, schema = pg_schema
    url = storage_url(dsn, schema)
    instances: list[Instance] = []
    try:
        first = Instance(str(tmp_path / "a"), "a", url, TTL).start(timeout=60)
        instances.append(first)
        for name in ("b", "c"):
            instances.append(Instance(str(tmp_path / name), name, url, TTL).start(wait_ready=False))
        for inst in instances:
            inst.wait(lambda inst=inst: inst.status_of("/readyz") == 200, 60, f"{inst.name} ready")
        yield instances
    finally:
        stop_all(instances)


def _spread(instances: list[Instance]) -> dict[str, Instance]:
    """Wait until every site is owned and running on exactly one live instance; site -> owner."""

    def settled() -> dict[str, Instance] | None:
        owners: dict[str, Instance] = {}
        for inst in instances:
            if inst.frozen or inst.proc is None or inst.proc.poll() is not None:
                continue
            owned, running = set(inst.owned()), inst.running()
            if owned != running:
                return None
            for site in owned:
                if site in owners:
                    return None
                owners[site] = inst
        if set(owners) != set(SITES):
            return None
        live = [i.name for i in instances if not i.frozen and i.proc is not None and i.proc.poll() is None]
        placed = all(owners[site].name == preferred_owner(site, live) for site in SITES)
        return owners if placed else None  # not only consistent: spread as rendezvous hashing places them

    return wait_for(settled, timeout=6 * TTL, interval=0.2, what="every site owned and running on one instance")


def _takeover(instances: list[Instance], victim: Instance, lost: set[str], fault: float) -> float:
    survivors = [i for i in instances if i is not victim]

    def moved() -> bool:
        return all(any(site in s.owned() and site in s.running() for s in survivors) for site in lost)

    wait_for(moved, timeout=TTL + 15, interval=0.1, what=f"{sorted(lost)} running on the survivors")
    return time.monotonic() - fault


def test_a_killed_owners_sites_run_elsewhere_and_commands_reach_the_owner(cluster: list[Instance]) -> None:
    with HttpSampler(cluster) as sampler:
        owners = _spread(cluster)
        assert len({o.name for o in owners.values()}) >= 2, "six sites should spread over three instances"
        # a command sent to a non-owner is applied by the owner (its actors stop, then start again)
        site = SITES[0]
        owner = owners[site]
        other = next(i for i in cluster if i is not owner)
        status, _ = other.request("POST", f"/api/v1/sites/{site}/disable")
        assert status == 202
        wait_for(
            lambda: site not in owner.running(), timeout=5, interval=0.05, what="the owner stops the disabled site"
        )
        assert owner.get(f"/api/v1/sites/{site}")["enabled"] is False
        status, _ = other.request("POST", f"/api/v1/sites/{site}/enable")
        assert status == 202
        wait_for(
            lambda: site in owner.running(), timeout=5, interval=0.05, what="the owner starts the enabled site again"
        )
        assert site not in other.running()
        assert other.get(f"/api/v1/sites/{site}")["owner"] == owner.name
        # a restart sent to a non-owner: the owner's actor gets a new generation
        before = owner.endpoint(site, "lo")["generation"]
        status, _ = other.request("POST", f"/api/v1/endpoints/{site}/lo/restart")
        assert status == 202, status
        wait_for(lambda: owner.endpoint(site, "lo")["generation"] > before, timeout=5, interval=0.05,
                 what="the owner restarts the endpoint")  # fmt: skip
        # a non-owner answers with the owner's endpoint states (stored), not "disabled"
        other.wait_state(site, "lo", "up", timeout=10)
        # per-endpoint series only from the owner (SPEC 7)
        assert f'fieldwatch_endpoint_up{{endpoint="lo",kind="icmp",site="{site}"}}' in owner.metrics_text()
        assert f'site="{site}"' not in other.metrics_text().split("fieldwatch_site_owned", 1)[0]

        # a site created on one instance runs on exactly one; deleted on another, it stops everywhere
        creator, deleter = cluster[0], cluster[1]
        body = {"name": "fresh", "endpoints": [{"name": "lo", "kind": "icmp", "host": "127.0.0.1", "interval_s": 1}]}
        status, _ = creator.request("POST", "/api/v1/sites", body)
        assert status in (200, 201), status

        def runs_fresh() -> list[str]:
            return [i.name for i in cluster if "fresh" in i.running()]

        wait_for(lambda: len(runs_fresh()) == 1, timeout=10, interval=0.1, what="the created site runs on one instance")

        def listed_with_owner() -> bool:
            running = runs_fresh()
            return len(running) == 1 and all(i.get("/api/v1/sites/fresh")["owner"] == running[0] for i in cluster)

        wait_for(listed_with_owner,
                 timeout=5, interval=0.1, what="every instance lists the new site with its owner")  # fmt: skip
        status, _ = deleter.request("DELETE", "/api/v1/sites/fresh")
        assert status in (200, 204), status
        wait_for(lambda: not runs_fresh(), timeout=5, interval=0.1, what="the deleted site stops everywhere")
        wait_for(lambda: all(i.status_of("/api/v1/sites/fresh") == 404 for i in cluster), timeout=5,
                 interval=0.1, what="every instance forgets the deleted site")  # fmt: skip

        # `fieldwatch status` shows each site's owner
        owners = _spread(cluster)
        out = subprocess.run([sys.executable, "-m", "fieldwatch", "status", "--url", cluster[2].url],
                             capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()  # fmt: skip
        assert out[0].split()[:2] == ["SITE", "OWNER"]
        shown = {line.split()[0]: line.split()[1] for line in out[1:]}
        assert shown == {site: inst.name for site, inst in owners.items()}

        victim = max(cluster, key=lambda i: len(i.owned()))
        lost = set(victim.owned())
        fault = time.monotonic()
        victim.kill()
        took = _takeover(cluster, victim, lost, fault)
        print(f"SIGKILL: {sorted(lost)} running elsewhere after {took:.2f}s (ttl {TTL}s)")
        assert took <= TTL + 5
        # fresh readings on the new owner
        new_owner = next(i for i in cluster if i is not victim and next(iter(lost)) in i.owned())
        new_owner.wait_state(next(iter(lost)), "lo", "up", timeout=10)
    assert assert_never_owned_twice(sampler.samples) >= len(SITES)


def test_a_frozen_owner_is_replaced_and_demotes_itself_when_it_wakes(cluster: list[Instance]) -> None:
    with HttpSampler(cluster) as sampler:
        _spread(cluster)
        victim = max(cluster, key=lambda i: len(i.owned()))
        lost = victim.owned()
        assert lost
        fault = time.monotonic()
        victim.frozen = True
        victim.signal(signal.SIGSTOP)
        took = _takeover(cluster, victim, set(lost), fault)
        print(f"SIGSTOP: {sorted(lost)} running elsewhere after {took:.2f}s (ttl {TTL}s)")
        assert took <= TTL + 5
        victim.signal(signal.SIGCONT)
        resumed = time.monotonic()
        victim.frozen = False

        # Awake, it stops the actors of every lease it lost (its watchdog, not a renewal) and
        # never claims those epochs again; it may get its share back later at newer epochs.
        def demoted() -> bool:
            log = victim.output()
            return all(f"site {site} (epoch {epoch}) stopped here" in log for site, epoch in lost.items())

        wait_for(demoted, timeout=5, interval=0.05, what="the resumed instance stops the sites it lost")
        print(f"SIGCONT: the resumed instance stopped its lost sites within {time.monotonic() - resumed:.2f}s")
        assert not {site for site, epoch in victim.owned().items() if lost.get(site) == epoch}
        _spread(cluster)  # it rejoins: every site on exactly one instance again
    assert assert_never_owned_twice(sampler.samples) >= len(SITES)
    assert "not renewed in time: stopping it" in victim.output()


def test_a_stalled_database_stops_every_owner_before_its_leases_expire(
    cluster: list[Instance], pg_schema: tuple[str, str]
) -> None:
    """The lease table locked for longer than a lease: no instance can renew, so each stops
    its sites within the lease (measured from the moment the lock was taken, which is after
    its last renewal), and nobody takes a site over while the table is locked."""
    import psycopg2

    dsn, schema = pg_schema
    _spread(cluster)
    conn = psycopg2.connect(dsn, options=f"-c search_path={schema}", application_name=f"stall@{schema}")
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE site_lease IN ACCESS EXCLUSIVE MODE")
            locked = time.monotonic()
            wait_for(
                lambda: not any(i.running() or i.metrics_owned() for i in cluster),
                timeout=TTL + 5,
                interval=0.1,
                what="every instance stops its sites",
            )
            stopped = time.monotonic() - locked
            print(f"stalled database: every site stopped {stopped:.2f}s after the lock (ttl {TTL}s)")
            assert stopped < TTL
            # still locked: nobody may run a site
            while time.monotonic() < locked + TTL + 2:
                assert not any(i.running() for i in cluster)
                time.sleep(0.2)  # sampling the tree for a fixed window, not synchronising
        conn.rollback()
    finally:
        conn.close()
    _spread(cluster)  # the lock is gone: every site runs again, on one instance each
