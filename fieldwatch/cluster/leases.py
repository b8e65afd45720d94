"""Per-site leases on PostgreSQL: renewal, takeover by compare-and-swap, self-demotion.

One `LeaseManager` per instance. Its loop thread renews every lease the instance holds
in one statement (with `SET LOCAL statement_timeout`/`lock_timeout`, so a stalled
database cannot hold a renewal past the lease), and scans the lease table to take the
free or expired leases placed on it (`placement.plan_scan`) by compare-and-swap on the
epoch. Expiry is always judged by the database clock, never by ours: `clock_timestamp()`
at execution, so a renewal that waited for a lock never renews a lease that expired
meanwhile.

Ownership is checked by its readers: `owns()` is true only while the last successful
renewal was *sent* less than `ttl - margin` ago by our monotonic clock (the database's
expiry is at least `ttl` after the send). A watchdog thread calls `on_lost` at that
moment when no renewal succeeded, so a site's actors stop before anyone may take it
over, even when the loop thread is stuck in the network or the process was frozen.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg2

from fieldwatch.cluster.placement import LeaseRow, plan_scan
from fieldwatch.cluster.schema import INSTANCE_TABLE, LEASE_TABLE, ensure_schema

__all__ = ["LeaseManager", "LeaseTimings", "SiteCallback"]

logger = logging.getLogger(__name__)

SiteCallback = Callable[[str, int], None]
"""Called with (site, epoch) from a manager thread when a lease is gained or lost."""


@dataclass(frozen=True, slots=True)
class LeaseTimings:
    """The timings derived from `lease_ttl_s` (all seconds).

    `margin`: how long before the database's expiry an owner stops its sites (room for
    `on_lost` to stop actors); `renew_every`: renewal period; `statement_timeout`: the
    bound on one renewal or scan; `scan_every`: how often free leases are looked for
    (bounds takeover at ttl + scan_every).
    """

    ttl: float
    margin: float
    renew_every: float
    statement_timeout: float
    scan_every: float

    @classmethod
    def for_ttl(cls, ttl: float) -> LeaseTimings:
        """Renew four times per lease; stop a third of a lease before it can expire."""
        return cls(ttl=ttl, margin=ttl / 3, renew_every=ttl / 4,
                   statement_timeout=ttl / 4, scan_every=min(1.0, ttl / 10))


@dataclass(slots=True)
class _Held:
    epoch: int
    valid_until: float  # monotonic


class LeaseManager:
    """Holds this instance's site leases in the cluster tables (see the module docstring).

    `wall_clock` is only used for what is shown to people (never for expiry); tests
    offset it to prove that an instance with a wrong clock changes nothing.
    """

    def __init__(self, dsn: str, name: str, ttl: float, *, schema: str | None = None,
                 on_acquired: SiteCallback | None = None, on_lost: SiteCallback | None = None,
                 max_moves: int = 8, timings: LeaseTimings | None = None,
                 wall_clock: Callable[[], float] = time.time, create_schema: bool = True) -> None:
        self.dsn = dsn
        self.create_schema = create_schema  # False: storage migration 3 made the tables
        self.name = name
        self.boot_id = uuid.uuid4().hex[:16]
        self.timings = timings or LeaseTimings.for_ttl(ttl)
        self.schema = schema
        self.max_moves = max_moves
        self.wall_clock = wall_clock
        self._on_acquired = on_acquired or (lambda site, epoch: None)
        self._on_lost = on_lost or (lambda site, epoch: None)
        self._lock = threading.Condition()
        self._held: dict[str, _Held] = {}
        self._registered_until = 0.0  # monotonic: our instance row is live until then
        self._conn: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._renew_failing = False
        self.renew_failures = 0
        self.last_renewed_wall: float | None = None

    # -- readers (never touch the database) ---------------------------------------------

    def owned(self) -> dict[str, int]:
        """The sites this instance may run right now, with their lease epochs."""
        now = time.monotonic()
        with self._lock:
            return {site: h.epoch for site, h in self._held.items() if now < h.valid_until}

    def owns(self, site: str) -> bool:
        """True while this instance holds `site`'s lease by its own monotonic clock."""
        return site in self.owned()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the tables if needed, register this instance and start the threads."""
        conn = self._connection()
        if self.create_schema:
            ensure_schema(conn)
        sent = time.monotonic()
        with conn, conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {INSTANCE_TABLE} (name, boot_id, started_at, last_seen) "
                "VALUES (%s, %s, now(), now()) ON CONFLICT (name) DO UPDATE "
                "SET boot_id = EXCLUDED.boot_id, started_at = now(), last_seen = now()",
                (self.name, self.boot_id))
        self._registered_until = sent + self.timings.ttl - self.timings.margin
        for target, label in ((self._loop, "leases"), (self._watchdog, "lease-watchdog")):
            thread = threading.Thread(target=target, name=f"{label}:{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, release: bool = True) -> None:
        """Stop the threads; with `release`, hand every lease back at once (a drain)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.timings.statement_timeout + 5)
        held = self._take_all()
        for site, epoch in held.items():
            self._notify(self._on_lost, site, epoch)
        if release:
            try:
                self._release(held, leave=True)
            except psycopg2.Error as err:
                logger.warning("cluster: could not release %d leases on stop: %s", len(held), err)
        self._close()

    def declare_sites(self, sites: Iterable[str]) -> None:
        """Make sure each site has a lease row (free until an instance takes it)."""
        names = sorted(set(sites))
        with self._txn() as cur:
            cur.execute(f"INSERT INTO {LEASE_TABLE} (site) SELECT unnest(%s::text[]) "
                        "ON CONFLICT (site) DO NOTHING", (names,))

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        next_renew = time.monotonic() + self.timings.renew_every
        scan_failing = False
        while not self._stop.is_set():
            if time.monotonic() >= next_renew:
                try:
                    next_renew = time.monotonic() + self.timings.renew_every
                    self._renew()
                except psycopg2.Error as err:
                    self._renew_failed(err)
                    self._close()
                    next_renew = time.monotonic() + self.timings.scan_every  # retry soon
            if time.monotonic() < self._registered_until:
                try:
                    self._scan()
                    scan_failing = False
                except psycopg2.Error as err:
                    if not scan_failing:
                        logger.warning("cluster: lease scan failed: %s", str(err).strip())
                    scan_failing = True
                    self._close()
            self._stop.wait(self.timings.scan_every)

    def _renew(self) -> None:
        """Renew the instance row and every held lease in one statement."""
        with self._lock:
            held = {site: h.epoch for site, h in self._held.items()}
        sent = time.monotonic()
        with self._txn() as cur:
            cur.execute(
                f"WITH me AS (UPDATE {INSTANCE_TABLE} SET last_seen = clock_timestamp() "
                "  WHERE name = %(name)s AND boot_id = %(boot)s RETURNING 1), "
                f"renewed AS (UPDATE {LEASE_TABLE} "
                "  SET expires_at = clock_timestamp() + make_interval(secs => %(ttl)s) "
                "  WHERE owner_name = %(name)s AND owner_boot = %(boot)s "
                "  AND expires_at > clock_timestamp() "
                "  AND (site, epoch) IN (SELECT * FROM unnest(%(sites)s::text[], %(epochs)s::bigint[])) "
                "  AND EXISTS (SELECT 1 FROM me) RETURNING site) "
                "SELECT (SELECT count(*) FROM me), ARRAY(SELECT site FROM renewed)",
                {"name": self.name, "boot": self.boot_id, "ttl": self.timings.ttl,
                 "sites": list(held), "epochs": list(held.values())})
            me, renewed = cur.fetchone()
        if not me:
            if self._registered_until:  # log once, not on every retry
                logger.error("cluster: instance %s (boot %s) is no longer registered: another process "
                             "uses this instance name? giving up every lease", self.name, self.boot_id)
            self._registered_until = 0.0
            self._lose(set(held))
            raise psycopg2.OperationalError("instance row taken over by another boot")
        valid_until = sent + self.timings.ttl - self.timings.margin
        self._registered_until = valid_until
        with self._lock:
            for site in renewed:
                if site in self._held and self._held[site].epoch == held[site]:
                    self._held[site].valid_until = valid_until
            self._lock.notify_all()
        self._lose(set(held) - set(renewed))
        self.last_renewed_wall = self.wall_clock()
        if self._renew_failing:
            logger.info("cluster: lease renewal works again (%d leases)", len(renewed))
            self._renew_failing = False

    def _renew_failed(self, err: Exception) -> None:
        self.renew_failures += 1
        if not self._renew_failing:
            logger.error("cluster: lease renewal failed: %s", str(err).strip())
            self._renew_failing = True

    def _scan(self) -> None:
        """Read the lease table and live instances; take and hand over leases as planned."""
        with self._txn() as cur:
            cur.execute(
                "SELECT site, owner_name, epoch, owner_name IS NOT NULL AND expires_at > clock_timestamp(), "
                f"expires_at < clock_timestamp() - make_interval(secs => %s) FROM {LEASE_TABLE}",
                (self.timings.ttl,))
            rows = [LeaseRow(site=s, owner=o, epoch=e, held=h, orphaned=orph)
                    for s, o, e, h, orph in cur.fetchall()]
            cur.execute(f"SELECT name FROM {INSTANCE_TABLE} "
                        "WHERE last_seen > clock_timestamp() - make_interval(secs => %s)",
                        (self.timings.ttl,))
            live = [name for (name,) in cur.fetchall()]
        mine = self.owned()
        plan = plan_scan(self.name, rows, live, self.max_moves)
        for site, epoch in plan.take.items():
            self._acquire(site, epoch)
        handover = {site: mine[site] for site in plan.release if site in mine}
        if handover:
            self._lose(set(handover), why="handed over to a joining instance")
            self._release(handover)

    def _acquire(self, site: str, epoch: int) -> None:
        """Compare-and-swap a free or expired lease from `epoch` to `epoch + 1`."""
        if time.monotonic() >= self._registered_until:
            return
        sent = time.monotonic()
        with self._txn() as cur:
            # FOR UPDATE conflicts with writers holding the row FOR KEY SHARE (see `fenced`):
            # while a write of the old epoch is open, skip the site until a later scan.
            cur.execute(f"SELECT 1 FROM {LEASE_TABLE} WHERE site = %s FOR UPDATE SKIP LOCKED", (site,))
            if cur.fetchone() is None:
                return
            cur.execute(
                f"UPDATE {LEASE_TABLE} SET owner_name = %s, owner_boot = %s, epoch = epoch + 1, "
                "expires_at = clock_timestamp() + make_interval(secs => %s), "
                "acquired_at = clock_timestamp() WHERE site = %s AND epoch = %s "
                "AND (owner_name IS NULL OR expires_at <= clock_timestamp()) "
                "RETURNING epoch",
                (self.name, self.boot_id, self.timings.ttl, site, epoch))
            row = cur.fetchone()
        if row is None:
            return  # another instance won the race
        with self._lock:
            self._held[site] = _Held(epoch=row[0], valid_until=sent + self.timings.ttl - self.timings.margin)
            self._lock.notify_all()
        logger.info("cluster: took site %s (epoch %d)", site, row[0])
        self._notify(self._on_acquired, site, row[0])

    def _release(self, leases: dict[str, int], leave: bool = False) -> None:
        """Hand `leases` back (free at once); with `leave`, also leave the cluster, so the
        others stop placing sites here without waiting for our heartbeat to age out."""
        with self._txn() as cur:
            if leave:
                cur.execute(f"DELETE FROM {INSTANCE_TABLE} WHERE name = %s AND boot_id = %s",
                            (self.name, self.boot_id))
            cur.execute(
                f"UPDATE {LEASE_TABLE} SET owner_name = NULL, owner_boot = NULL, "
                "expires_at = clock_timestamp() "
                "WHERE owner_name = %s AND owner_boot = %s "
                "AND (site, epoch) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                (self.name, self.boot_id, list(leases), list(leases.values())))

    # -- demotion --------------------------------------------------------------------------

    def _watchdog(self) -> None:
        """Call `on_lost` for each lease whose validity ends without a renewal."""
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                expired = {s: h.epoch for s, h in self._held.items() if h.valid_until <= now}
                for site in expired:
                    del self._held[site]
                if not expired:
                    deadlines = [h.valid_until for h in self._held.values()]
                    self._lock.wait(timeout=min(deadlines, default=now + 1.0) - now)
            for site, epoch in expired.items():
                logger.error("cluster: lease of site %s (epoch %d) not renewed in time: "
                             "stopping it before it can expire", site, epoch)
                self._notify(self._on_lost, site, epoch)

    @staticmethod
    def _notify(callback: SiteCallback, site: str, epoch: int) -> None:
        try:
            callback(site, epoch)
        except Exception:  # supervision boundary: a failing callback must not stop the leases
            logger.exception("cluster: lease callback for site %s failed", site)

    def _lose(self, sites: set[str], why: str = "") -> None:
        with self._lock:
            lost = {s: self._held.pop(s).epoch for s in sites if s in self._held}
        for site, epoch in lost.items():
            if why:
                logger.info("cluster: site %s (epoch %d) %s", site, epoch, why)
            else:
                logger.warning("cluster: lost site %s (epoch %d): its lease was not renewed", site, epoch)
            self._notify(self._on_lost, site, epoch)

    def _take_all(self) -> dict[str, int]:
        with self._lock:
            held = {site: h.epoch for site, h in self._held.items()}
            self._held.clear()
            return held

    # -- connection ----------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            options = f"-c search_path={self.schema}" if self.schema else ""
            label = f"fieldwatch-leases:{self.name}" + (f"@{self.schema}" if self.schema else "")
            self._conn = psycopg2.connect(
                self.dsn, options=options, application_name=label[:63],
                connect_timeout=max(1, int(self.timings.statement_timeout)),
                keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=2)
        return self._conn

    def _txn(self) -> _Txn:
        return _Txn(self._connection(), self.timings.statement_timeout)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass  # already broken: nothing more to release


class _Txn:
    """One transaction with local statement and lock timeouts; commits or rolls back."""

    def __init__(self, conn: Any, timeout_s: float) -> None:
        self.conn = conn
        self.ms = max(1, int(timeout_s * 1000))
        self.cur: Any = None

    def __enter__(self) -> Any:
        self.cur = self.conn.cursor()
        self.cur.execute(f"SET LOCAL statement_timeout = {self.ms}; SET LOCAL lock_timeout = {self.ms}")
        return self.cur

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.cur.close()
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        except psycopg2.Error:
            if exc_type is None:
                raise
            # rolling back a broken connection fails too: the original error is what matters
