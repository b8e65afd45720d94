"""The daemon's side of high availability (SPEC section 10): leases drive which sites run here.

`ClusterRunner` is started by the daemon when `cluster:` is set (PostgreSQL only):

- the controller runs only the sites whose lease this instance holds now
  (`Controller.set_site_filter(manager.owns)`, set before `load()`);
- a lease gained starts the site (`Controller.adopt_site`, on the runner's own thread so
  the lease loop never waits for actors); a lease lost or handed over stops the site's
  actors at once, from the lease manager's thread (`Controller.release_site`), before
  the database can give the lease to anyone else (the manager's margin, a third of the
  lease, is the time allowed for that);
- commands taken by any instance are stored, then announced with `pg_notify` on the
  cluster's channel; every instance's `CommandListener` (its own connection, LISTEN)
  brings its view in line and the owner applies them to its actors at once.

Fencing (`install_fence`, from `prepare`): the ledger records `epochs()[site]` for each
incarnation it begins (the epoch its writes carry), and the persistence writer checks
those epochs against the lease table inside every batch's transaction
(`fieldwatch.cluster.fencing.EpochFence`); `holds(site)` is what an actor checks before
(re)connecting.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

import psycopg2

from fieldwatch.cluster.commands import (
    CommandListener,
    RemoteAwareStorage,
    channel_name,
    clustered_controller,
    connect,
    split_storage_url,
)
from fieldwatch.cluster.fencing import EpochFence
from fieldwatch.cluster.leases import LeaseManager
from fieldwatch.cluster.schema import LEASE_TABLE
from fieldwatch.cluster.view import ClusterCollector, DatabaseCluster, FencedWrites
from fieldwatch.storage.commands import LoadSites

__all__ = [
    "ClusterRunner",
    "CommandListener",
    "RemoteAwareStorage",
    "channel_name",
    "clustered_controller",
    "split_storage_url",
]  # the command channel's names are re-exported from fieldwatch.cluster.commands

logger = logging.getLogger(__name__)


class ClusterRunner:
    """Leases, the command channel and the cluster view of one instance (module docstring)."""

    def __init__(self, instance: str, storage_url: str, lease_ttl_s: float, controller: Any) -> None:
        self.instance = instance
        self.dsn, self.schema = split_storage_url(storage_url)
        self.controller = controller
        self.manager = LeaseManager(
            self.dsn,
            instance,
            lease_ttl_s,
            schema=self.schema,
            on_acquired=self._acquired,
            on_lost=self._lost,
            create_schema=False,
        )
        self.channel = channel_name(self.schema)
        self.fenced = FencedWrites()
        self.fence: EpochFence | None = None
        self.view = DatabaseCluster(self.dsn, self.manager, self.schema)
        self.listener = CommandListener(self.dsn, self.schema, self.channel, instance, self._apply)
        self._adopt: queue.Queue[str | None] = queue.Queue()
        self._adopter = threading.Thread(target=self._adopt_loop, name=f"cluster-adopt:{instance}", daemon=True)
        self._mirror = threading.Thread(target=self._mirror_loop, name=f"cluster-mirror:{instance}", daemon=True)
        self._stopping = threading.Event()
        self._notify_lock = threading.Lock()
        self._notify_conn: Any = None
        self._owners: dict[str, str | None] = {}
        self._owners_at = 0.0
        self._owners_lock = threading.Lock()
        self.commands_applied = 0

    # -- the fencing seam -----------------------------------------------------------------

    def epochs(self) -> dict[str, int]:
        """Site -> lease epoch for every site this instance may run (and write for) now."""
        return self.manager.owned()

    def holds(self, site: str) -> bool:
        """Whether this instance holds `site`'s lease now (by its own monotonic clock)."""
        return self.manager.owns(site)

    def install_fence(self, gateway: Any, ledger: Any) -> EpochFence:
        """Fencing (SPEC section 10): incarnations record their site's epoch, the writer checks it."""
        fence = EpochFence(self.fenced, idle_timeout_s=self.manager.timings.statement_timeout)
        gateway.fence = fence
        ledger.epoch_of = lambda site: self.epochs().get(site)
        self.fence = fence
        return fence

    # -- lifecycle ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Before `controller.load()`: run only the sites held, record declarations per instance."""
        self.controller.set_site_filter(self.manager.owns)
        self.install_fence(self.controller.storage, self.controller.ledger)
        self.controller.sync_instance = self.instance
        self.controller.announce = self.announce
        self.controller.storage = RemoteAwareStorage(self.controller.storage, self.controller.remote_flag())

    def start(self) -> None:
        """After `controller.load()`: a lease row per site, then the lease threads and the listener."""
        self.manager.declare_sites(self.controller.site_names())
        self._adopter.start()
        self._mirror.start()
        self.listener.start()
        self.manager.start()
        logger.info(
            "cluster: instance %s (boot %s) runs its leased sites (lease %.0f s)",
            self.instance,
            self.manager.boot_id,
            self.manager.timings.ttl,
        )

    def stop(self) -> None:
        """Hand every lease back (their sites stop here first) and stop the threads (a drain)."""
        self._stopping.set()
        self.listener.stop()
        self.manager.stop(release=True)
        self._mirror.join(timeout=5)
        self._adopt.put(None)
        self._adopter.join(timeout=10)
        with self._notify_lock:
            if self._notify_conn is not None:
                self._notify_conn.close()
                self._notify_conn = None

    # -- leases -> actors -------------------------------------------------------------------

    def _acquired(self, site: str, epoch: int) -> None:
        self._adopt.put(site)

    def _adopt_loop(self) -> None:
        while True:
            site = self._adopt.get()
            if site is None:
                return
            try:
                if self.manager.owns(site):
                    self.controller.adopt_site(site)
            except Exception:  # noqa: BLE001 - one site that cannot start must not stop the others
                logger.exception("cluster: starting site %s failed", site)

    def _lost(self, site: str, epoch: int) -> None:
        started = time.monotonic()
        try:
            self.controller.release_site(site)
        except Exception:  # noqa: BLE001 - keep demoting the other sites
            logger.exception("cluster: stopping site %s failed", site)
        logger.info("cluster: site %s (epoch %d) stopped here in %.3f s", site, epoch, time.monotonic() - started)

    # -- views ---------------------------------------------------------------------------------

    def _mirror_loop(self) -> None:
        """Once a second, copy the stored state of the endpoints of sites run elsewhere into
        this instance's ledger, so any instance answers the API with the owner's states (as
        of the owner's last commit). Sites this instance holds are never touched."""
        conn: Any = None
        failing = False
        while not self._stopping.wait(1.0):
            try:
                if conn is None or conn.closed:
                    conn = connect(self.dsn, self.schema, f"fieldwatch-mirror:{self.instance}")
                    conn.autocommit = True
                self.mirror_once(conn)
                failing = False
            except psycopg2.Error as err:
                if not failing:
                    logger.warning("cluster: cannot read other instances' endpoint states: %s", str(err).strip())
                failing = True
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()

    def mirror_once(self, conn: Any) -> int:
        """One pass of `_mirror_loop`; returns the number of endpoints updated."""
        elsewhere = [site for site in self.controller.site_names() if not self.manager.owns(site)]
        if not elsewhere:
            return 0
        with conn.cursor() as cur:
            cur.execute(
                "SET statement_timeout = 2000; "
                "SELECT s.name, e.name, e.state, e.since, e.reason, e.down_since, e.last_data_at, e.generation, "
                "e.restarts, e.reconnects FROM endpoint e JOIN site s ON s.id = e.site_id WHERE s.name = ANY(%s)",
                (elsewhere,),
            )
            rows = cur.fetchall()
        ids = self.controller.endpoint_ids()
        ledger = self.controller.ledger
        updated = 0
        for site, name, state, since, reason, down_since, last_data_at, generation, restarts, reconnects in rows:
            endpoint_id = ids.get((site, name))
            if endpoint_id is None or self.manager.owns(site):
                continue
            changes = {"state": state, "since": since, "reason": reason, "down_since": down_since,
                       "last_data_at": last_data_at, "generation": generation, "restarts": restarts,
                       "reconnects": reconnects}  # fmt: skip
            updated += ledger.mirror(endpoint_id, **changes)
        return updated

    def owner_of(self, site: str) -> str | None:
        """This instance when it holds `site`; else its live owner by the lease table (read at
        most once a second for all sites)."""
        if self.manager.owns(site):
            return self.instance
        now = time.monotonic()
        with self._owners_lock:
            if now - self._owners_at > 1.0:
                try:
                    rows = self.view.snapshot()["sites"]
                    self._owners = {row["site"]: row["owner"] for row in rows}
                except psycopg2.Error as err:
                    logger.warning("cluster: cannot read the lease table: %s", str(err).strip())
                    self._owners = {}
                self._owners_at = now
            owner = self._owners.get(site)
        return owner if owner != self.instance else None

    def collector(self) -> ClusterCollector:
        """SPEC section 7's cluster metrics for this instance."""
        return ClusterCollector(self.view, self.controller.site_names, self.fenced, self.manager)

    # -- commands -------------------------------------------------------------------------------

    def announce(self, op: str, site: str, **details: Any) -> None:
        """Tell every instance (the owner applies it) that a command changed `site`.

        Called after the command was stored. A failure is logged: the owner then applies
        the change at its next restart or lease change, not at once.
        """
        if op == "site":
            self._site_rows(site)
        payload = json.dumps({"op": op, "site": site, "from": self.instance, **details})
        with self._notify_lock:
            try:
                if self._notify_conn is None or self._notify_conn.closed:
                    self._notify_conn = connect(self.dsn, self.schema, f"fieldwatch-notify:{self.instance}")
                    self._notify_conn.autocommit = True
                with self._notify_conn.cursor() as cur:
                    cur.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
            except psycopg2.Error as err:
                logger.error("cluster: could not announce %s on %s: %s", op, site, str(err).strip())
                if self._notify_conn is not None:
                    self._notify_conn.close()
                    self._notify_conn = None

    def _site_rows(self, site: str) -> None:
        """A site created here gets its lease row; a deleted one loses it."""
        exists = site in self.controller.site_names()
        try:
            if exists:
                self.manager.declare_sites([site])
            else:
                conn = connect(self.dsn, self.schema, f"fieldwatch-notify:{self.instance}")
                try:
                    with conn, conn.cursor() as cur:
                        cur.execute(f"DELETE FROM {LEASE_TABLE} WHERE site = %s", (site,))
                finally:
                    conn.close()
        except psycopg2.Error as err:
            logger.error("cluster: could not update the lease row of %s: %s", site, str(err).strip())

    def _apply(self, message: dict[str, Any]) -> None:
        """A command another instance stored: bring this instance in line (owner: apply it)."""
        op, site = message.get("op"), str(message.get("site"))
        controller = self.controller
        with controller.remote_command():
            if op == "flags":
                controller.refresh_flags(site)
            elif op == "site":
                controller.refresh_site(site)
            elif op == "restart" and controller.runs_site(site):
                controller.restart_endpoint(site, str(message.get("endpoint")))
            elif op == "resync":
                self._resync()
            elif op == "topic" and controller.runs_site(site):
                controller.set_topic_active(
                    site, str(message.get("endpoint")), str(message.get("topic")), bool(message.get("active"))
                )
            else:
                return
        self.commands_applied += 1

    def _resync(self) -> None:
        """Bring every site in line with storage (after the listener missed notifications)."""
        stored = {row.name for row in self.controller.storage.command(LoadSites(), 30.0)}
        known = set(self.controller.site_names())
        for name in sorted(stored | known):
            if name in known:
                self.controller.refresh_flags(name)
            else:
                self.controller.refresh_site(name)
