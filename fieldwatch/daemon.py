"""The daemon: builds the supervision tree, storage, HTTP server, and runs until told to stop."""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import prometheus_client
import pykka

from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.persistence import PersistenceActor
from fieldwatch.actors.retention import RetentionActor
from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.actors.supervisor import ChildSpec, Supervisor, SupervisorOptions
from fieldwatch.actors.tree import TreeView
from fieldwatch.cluster.runner import ClusterRunner, clustered_controller
from fieldwatch.cluster.view import ClusterCollector, FencedWrites, LocalCluster
from fieldwatch.config.model import Config
from fieldwatch.controller import Controller
from fieldwatch.errors import StorageError
from fieldwatch.http.app import AppDeps, create_app
from fieldwatch.http.server import HttpServer, serve
from fieldwatch.kinds import KINDS
from fieldwatch.ledger import EndpointLedger
from fieldwatch.logring import LogRing
from fieldwatch.logsetup import setup_logging
from fieldwatch.policy import ChildPolicy
from fieldwatch.policy import HealthCheck as HealthPolicy
from fieldwatch.storage import queries
from fieldwatch.storage.commands import LoadSites
from fieldwatch.storage.db import init_database
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.migrations import migrate

__all__ = ["Daemon", "EXIT_OK", "EXIT_RUNTIME", "EXIT_EXHAUSTED"]

logger = logging.getLogger(__name__)

#: Cyclic-collector thresholds while the daemon runs (CPython's defaults: 700, 10, 10).
#: Every probe or reading allocates a few objects that live until their batch is
#: committed (tens of ms); each young pass promotes those in flight, and at 10,000
#: pinged endpoints the defaults ran a full pass every ~10 s and 13-15 % of the daemon's
#: CPU went to the collector (issue 17). 10,000 young objects per pass: a full pass
#: every few minutes instead; garbage cycles wait a little longer to be freed.
GC_THRESHOLDS = (10_000, 10, 10)

#: The endpoints' own objects (actors, probing schedules, statistics, caches) are built as they
#: connect, after start. Once none is `connecting` any more (looked at every SETTLE_CHECK_S, at
#: most SETTLE_MAX_S after start), they are frozen too: a full pass of the collector over
#: 20,000 endpoints' objects took 0.28 s, stalling every thread (issue 17; 88 -> 32 ms at 10,000).
SETTLE_CHECK_S = 5.0
SETTLE_MAX_S = 120.0


def tune_gc() -> None:
    """Set the collector's thresholds for a long-running daemon (`GC_THRESHOLDS`)."""
    gc.set_threshold(*GC_THRESHOLDS)


EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_EXHAUSTED = 3


class Daemon:
    """Everything `fieldwatch run` starts, in order, and stops in reverse."""

    def __init__(
        self, config: Config, *, console_log: bool = True, install_signals: bool = True, http: bool = True
    ) -> None:
        self.config = config
        self.with_http = http
        self.console_log = console_log
        self.install_signals = install_signals
        self.scheduler = Scheduler()
        self._settle_timer: TimerHandle | None = None  # see _freeze_when_settled
        self._settle_by = 0.0
        self.tree = TreeView()
        self.storage = StorageGateway(max_queue=config.storage.max_queue)
        self.ledger = EndpointLedger(self.storage, max_reading_series=config.http.max_reading_series)
        self.registry = prometheus_client.CollectorRegistry()
        self.root: pykka.ActorRef[Any] | None = None
        self.controller: Controller | None = None
        self.http: HttpServer | None = None
        self.exit_code = EXIT_OK
        self.log_ring: LogRing | None = None
        self._stop = threading.Event()
        self._restart_tree = threading.Event()
        self.cluster: Any = None  # a ClusterRunner when `cluster:` is set

    # -- start -------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        secrets = [self.config.http.token or ""]
        for site in self.config.sites:
            for ep in site.endpoints:
                secrets.append(getattr(ep.options, "password", None) or "")
        return [s for s in secrets if s]

    def start(self) -> None:
        """Start storage, the tree and the HTTP server; raises on a start-up failure."""
        cfg = self.config
        self.log_ring = setup_logging(
            level=cfg.logging.level,
            file=cfg.logging.file,
            fmt=cfg.logging.format,
            max_bytes=cfg.logging.max_bytes,
            backups=cfg.logging.backups,
            console=self.console_log,
            secrets=self._secrets(),
        )
        logger.info("fieldwatch starting: instance %s, %d sites", cfg.instance, len(cfg.sites))
        db = init_database(cfg.storage.url)
        version = migrate(db)
        logger.info("storage ready: schema version %d", version)
        # generations: the ledger continues from the stored endpoint rows (controller.load);
        # the writer seeds its own index from the endpoint table in its on_start
        self.scheduler.start()
        self.root = self._start_root()
        controller_class: Any = Controller
        if cfg.cluster is not None:  # high availability (SPEC 10): see fieldwatch/cluster/runner.py
            controller_class = clustered_controller(Controller)
        self.controller = controller_class(
            root=self.root,
            ledger=self.ledger,
            tree=self.tree,
            storage=self.storage,
            scheduler=self.scheduler,
            policy=cfg.supervision,
            queries=queries,
        )
        self._wait_storage(deadline=time.monotonic() + 15)
        if cfg.cluster is not None:
            self.cluster = ClusterRunner(cfg.instance, cfg.storage.url, cfg.cluster.lease_ttl_s, self.controller)
            self.cluster.prepare()
        self.controller.load(cfg.sites)
        if self.cluster is not None:
            self.cluster.start()
        if self.with_http:
            self._start_http()
        if self.install_signals:
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
        # Everything built so far lives as long as the daemon: keep it out of the cyclic
        # collector's full passes, which otherwise stall every thread on big trees.
        gc.collect()
        gc.freeze()
        tune_gc()
        self._settle_by = time.monotonic() + SETTLE_MAX_S
        self._settle_timer = self.scheduler.every(SETTLE_CHECK_S, self._freeze_when_settled)
        logger.info("fieldwatch started; API at %s", self.url)

    def _freeze_when_settled(self) -> None:
        """Scheduler thread: once no endpoint is connecting, freeze what the start built (once)."""
        if self.ledger.connecting() and time.monotonic() < self._settle_by:
            return
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        logger.info("endpoints started: %d objects kept out of the collector's passes (%.0f ms)",
                    gc.get_freeze_count(), 1000 * (time.perf_counter() - started))

    def _wait_storage(self, deadline: float) -> None:
        """Wait for the writer actor (started asynchronously by the storage supervisor)."""
        while True:
            try:
                self.storage.command(LoadSites(), 5.0)
                return
            except StorageError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)  # bounded start-up poll

    def _start_root(self) -> pykka.ActorRef[Any]:
        """The root supervisor with the storage subtree (sites are added by the controller)."""
        policy = self.config.supervision.root
        root_ctx = ChildContext("root", "root", 1, 0, None, self.scheduler)
        root_options = SupervisorOptions(policy.strategy, policy.intensity, self.tree, self._exhausted)
        return Supervisor.start(root_ctx, root_options, [self._storage_spec()])

    def _storage_spec(self) -> ChildSpec:
        policy = self.config.supervision.storage
        storage_options = SupervisorOptions(policy.strategy, policy.intensity, self.tree)
        writer_policy = ChildPolicy(health_check=HealthPolicy(interval_s=5, timeout_s=30, failures=3))

        def _writer(ctx: ChildContext) -> pykka.ActorRef[Any]:
            return PersistenceActor.start(
                self.storage,
                ctx=ctx,
                policy=policy,
                scheduler=self.scheduler,
                drain_on_stop_s=3.0,
                defer_rollups=self.config.cluster is None,  # a cluster's sites move: no open buckets in memory
            )

        children = [ChildSpec("writer", _writer, writer_policy, kind="persistence")]
        children.extend(self._retention_specs())

        def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
            return Supervisor.start(ctx, storage_options, list(children))

        supervisor_policy = ChildPolicy(health_check=HealthPolicy(interval_s=5, timeout_s=30, failures=3))
        return ChildSpec("storage", _start, supervisor_policy, kind="supervisor")

    def _retention_specs(self) -> list[ChildSpec]:
        storage = self.config.storage
        if storage.retention_days is not None:
            logger.warning(
                "storage.retention_days is the old setting: raw readings and events are kept %g days; "
                "use storage.retention (raw_days, minute_days, hour_days, events_days) instead",
                storage.retention_days,
            )
        retention = storage.effective_retention()

        def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
            return RetentionActor.start(ctx=ctx, retention=retention, scheduler=self.scheduler)

        return [ChildSpec("retention", _start, ChildPolicy(), kind="retention")]

    def _cluster_view(self) -> Any:
        """The cluster runner's view (`cluster:` set), else this instance alone, owning every
        site. Sets the sites' `owner` and registers the cluster metrics (SPEC 7)."""
        assert self.controller is not None
        if self.cluster is not None:
            self.controller.site_owner = self.cluster.owner_of
            self.registry.register(self.cluster.collector())
            return self.cluster.view
        cluster = LocalCluster(self.config.instance, self.controller.site_names)
        self.controller.site_owner = cluster.owner_of
        self.registry.register(ClusterCollector(cluster, self.controller.site_names, FencedWrites()))
        return cluster

    def _start_http(self) -> None:
        assert self.controller is not None
        cluster = self._cluster_view()
        deps = AppDeps(
            controller=self.controller,
            board=self.ledger,
            tree=self.tree,
            storage=self.storage,
            registry=self.registry,
            token=self.config.http.token,
            log_file=self.config.logging.file,
            log_ring=self.log_ring,
            max_body_bytes=self.config.http.max_body_bytes,
            cluster=cluster,
        )
        self.http = serve(create_app(deps), self.config.http.listen, self.config.http.threads)

    @property
    def url(self) -> str:
        """The API's base URL (http://host:port)."""
        return str(self.http.url) if self.http is not None else ""

    # -- run and stop ------------------------------------------------------------

    @staticmethod
    def _stop_shared_resources() -> None:
        """A kind's shared resources (a prober, an event loop) outlive actors; stop them after the tree."""
        KINDS.stop_shared()

    def _flush(self, deadline: float) -> None:
        """Wait (bounded) until every queued write is committed."""
        while self.storage.queue_depth > 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # bounded shutdown poll
        left = self.storage.queue_depth
        if left:
            logger.error(
                "stopping with %d writes not committed (storage failing: %s)", left, self.storage.stats().reason
            )

    def _exhausted(self, reason: str) -> None:
        if self.config.supervision.root.on_exhausted == "restart":
            logger.critical("root supervisor gave up: %s; restarting the whole tree", reason)
            self._restart_tree.set()
            return
        logger.critical("root supervisor gave up: %s; exiting with code %d", reason, EXIT_EXHAUSTED)
        self.exit_code = EXIT_EXHAUSTED
        self._stop.set()

    def _rebuild_tree(self) -> None:
        """on_exhausted: restart — a fresh root, storage and sites, in this process."""
        assert self.controller is not None
        self._restart_tree.clear()
        if self.root is not None and self.root.is_alive():
            self.root.stop(block=True, timeout=10)
        self.root = self._start_root()
        self.tree.count_restart("daemon")
        self._wait_storage(deadline=time.monotonic() + 15)
        self.controller.reset(self.root)
        self.controller.load(self.config.sites)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        self._stop.set()

    def request_stop(self) -> None:
        """Ask run() to return (thread-safe)."""
        self._stop.set()

    def run(self) -> int:
        """Block until a signal or the root gives up; then stop everything; the exit code."""
        while not self._stop.wait(0.5):
            if self._restart_tree.is_set():
                try:
                    self._rebuild_tree()
                except Exception:  # noqa: BLE001 - a tree that cannot come back: exit like `exit`
                    logger.critical("restarting the tree failed; exiting with code %d", EXIT_EXHAUSTED, exc_info=True)
                    self.exit_code = EXIT_EXHAUSTED
                    break
        self.stop()
        return self.exit_code

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop HTTP, the tree (endpoints first, storage last, flushing) and the scheduler."""
        started = time.monotonic()
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.cluster is not None:
            try:
                self.cluster.stop()  # hands the leases back: the others take the sites over at once
            except Exception:  # noqa: BLE001 - shutdown boundary: keep stopping the rest
                logger.exception("stopping the cluster runner failed")
        if self.controller is not None:
            try:
                self.controller.stop_sites()
            except Exception:  # noqa: BLE001 - shutdown boundary: keep stopping the rest
                logger.exception("stopping the sites failed")
        self._flush(deadline=started + timeout_s / 2)
        if self.root is not None and self.root.is_alive():
            try:
                self.root.stop(block=True, timeout=timeout_s)
            except pykka.Timeout:
                logger.warning("the tree did not stop within %.0fs", timeout_s)
        self.root = None
        self._stop_shared_resources()
        self.scheduler.stop()
        logger.info("fieldwatch stopped in %.1fs (exit code %d)", time.monotonic() - started, self.exit_code)
