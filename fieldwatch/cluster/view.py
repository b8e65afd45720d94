"""What `GET /api/v1/cluster` and the cluster metrics show: instances, owners, epochs.

`LocalCluster` is one instance alone (SQLite, or no `cluster:` block): it lists itself
as the owner of every site, with no lease epochs. `DatabaseCluster` reads the cluster
tables of a shared PostgreSQL database (judging expiry and liveness by the database
clock) and overlays this instance's own lease manager, which is the only judge of
what *this* instance may claim (its monotonic clock, SPEC section 10).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg2
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fieldwatch.cluster.leases import LeaseManager
from fieldwatch.cluster.schema import INSTANCE_TABLE, LEASE_TABLE
from fieldwatch.timeutil import to_rfc3339

__all__ = ["ClusterCollector", "ClusterSource", "DatabaseCluster", "FencedWrites", "LocalCluster"]


class ClusterSource(Protocol):
    """Answers the cluster route and the owner of a site."""

    def snapshot(self) -> dict[str, Any]:
        """`{"instances": [...], "sites": [...]}` (SPEC section 6, `/api/v1/cluster`)."""
        ...

    def owner_of(self, site: str) -> str | None:
        """The instance that runs `site` now, or None when nobody holds it."""
        ...

    def owned(self) -> dict[str, int | None]:
        """The sites this instance runs now, with their lease epochs (None without leases)."""
        ...


class LocalCluster:
    """One instance alone: it runs every site; `sites` lists their names."""

    def __init__(self, instance: str, sites: Callable[[], Iterable[str]],
                 started_at: datetime | None = None) -> None:
        self.instance = instance
        self.sites = sites
        self.started_at = started_at or datetime.now(UTC)

    def owned(self) -> dict[str, int | None]:
        """Every site, without an epoch."""
        return {site: None for site in self.sites()}

    def owner_of(self, site: str) -> str | None:
        """This instance, for every site."""
        return self.instance

    def snapshot(self) -> dict[str, Any]:
        """This instance with all its sites; `last_seen` is now."""
        names = sorted(self.owned())
        return {
            "instances": [{"name": self.instance, "started_at": to_rfc3339(self.started_at),
                           "last_seen": to_rfc3339(datetime.now(UTC)), "live": True,
                           "sites": names}],
            "sites": [{"site": site, "owner": self.instance, "epoch": None, "expires_at": None}
                      for site in names],
        }


class DatabaseCluster:
    """The cluster tables of a shared PostgreSQL database, read on each call (2 s timeout)."""

    def __init__(self, dsn: str, manager: LeaseManager, schema: str | None = None) -> None:
        self.dsn = dsn
        self.manager = manager
        self.schema = schema

    def owned(self) -> dict[str, int | None]:
        """What this instance's lease manager says it may run now."""
        return dict(self.manager.owned())

    def owned_sites(self) -> dict[str, int]:
        """The sites this instance runs now (the metrics export per-endpoint series only for them)."""
        return self.manager.owned()

    def owner_of(self, site: str) -> str | None:
        """This instance when its manager holds the site, else the database's live owner."""
        if self.manager.owns(site):
            return self.manager.name
        owners = {row["site"]: row["owner"] for row in self.snapshot()["sites"]}
        owner = owners.get(site)
        return owner if owner != self.manager.name else None

    def snapshot(self) -> dict[str, Any]:
        """Instances (live: seen within a lease) and each site's live owner and epoch."""
        ttl = self.manager.timings.ttl
        options = "-c statement_timeout=2000" + (f" -c search_path={self.schema}" if self.schema else "")
        conn = psycopg2.connect(self.dsn, options=options, connect_timeout=2,
                                application_name=f"fieldwatch-cluster-view@{self.schema or ''}"[:63])
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"SELECT name, started_at, last_seen, last_seen > now() - make_interval(secs => %s) "
                            f"FROM {INSTANCE_TABLE} ORDER BY name", (ttl,))
                instances = cur.fetchall()
                cur.execute(f"SELECT site, CASE WHEN expires_at > now() THEN owner_name END, epoch, expires_at "
                            f"FROM {LEASE_TABLE} ORDER BY site")
                leases = cur.fetchall()
        finally:
            conn.close()
        mine = self.manager.owned()
        sites = []
        for site, owner, epoch, expires in leases:
            if owner == self.manager.name and site not in mine:
                owner = None  # the database still shows our lease, but we may no longer claim it
            sites.append({"site": site, "owner": owner, "epoch": epoch,
                          "expires_at": to_rfc3339(expires) if owner else None})
        return {
            "instances": [{"name": name, "started_at": to_rfc3339(started), "last_seen": to_rfc3339(seen),
                           "live": bool(live),
                           "sites": [s["site"] for s in sites if s["owner"] == name]}
                          for name, started, seen, live in instances],
            "sites": sites,
        }


class FencedWrites:
    """A counter the persistence writer increments for each write refused by `fenced()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, rows: int = 1) -> None:
        """Count `rows` refused writes."""
        with self._lock:
            self._value += rows

    @property
    def value(self) -> int:
        """Refused writes so far."""
        with self._lock:
            return self._value


class ClusterCollector:
    """Prometheus collector of SPEC section 7's cluster metrics, fresh on each scrape.

    `fieldwatch_site_owned{site}` is 1 for each site this instance may run now (its own
    clock decides, never a cached answer) and 0 for the other sites `known` lists.
    """

    def __init__(self, source: ClusterSource, known: Callable[[], Iterable[str]],
                 fenced: FencedWrites, manager: LeaseManager | None = None) -> None:
        self.source = source
        self.known = known
        self.fenced = fenced
        self.manager = manager

    def collect(self) -> Iterable[Metric]:
        """The three cluster families."""
        owned = self.source.owned()
        gauge = GaugeMetricFamily("fieldwatch_site_owned", "1 on the instance that owns the site",
                                  labels=["site"])
        for site in sorted(set(self.known()) | set(owned)):
            gauge.add_metric([site], 1.0 if site in owned else 0.0)
        yield gauge
        renew = CounterMetricFamily("fieldwatch_lease_renew_failures", "lease renewals that failed")
        renew.add_metric([], float(self.manager.renew_failures if self.manager is not None else 0))
        yield renew
        refused = CounterMetricFamily("fieldwatch_storage_fenced_writes",
                                      "writes refused because this instance no longer held the site's lease")
        refused.add_metric([], float(self.fenced.value))
        yield refused
