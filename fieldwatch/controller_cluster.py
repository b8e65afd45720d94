"""The controller's cluster side (SPEC section 10): which sites this instance runs.

Used by high availability (fieldwatch/cluster/runner.py): a lease gained starts a site
(`adopt_site`), a lease lost stops it before the lease can expire (`release_site`), and
commands stored by another instance are applied here (`refresh_flags`, `refresh_site`).
Outside a cluster `runs_site` is always true and none of the rest is called.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fieldwatch import states
from fieldwatch.config.model import SiteConfig
from fieldwatch.config.sites import parse_site_body
from fieldwatch.controller_views import SiteEntry
from fieldwatch.ledger import EndpointLedger
from fieldwatch.storage import commands as cmd
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.views import ViewCache

__all__ = ["ClusterSites"]

logger = logging.getLogger("fieldwatch.controller")

_ASK_TIMEOUT_S = 10.0


class ClusterSites:
    """Mixed into `fieldwatch.controller.Controller` (which sets these attributes and has these methods)."""

    ledger: EndpointLedger
    storage: StorageGateway
    _lock: threading.RLock
    _sites: dict[str, SiteEntry]
    _views: ViewCache
    _site_signatures: dict[str, Any]

    def _start_site(self, name: str) -> None:
        raise NotImplementedError

    def _stop_site(self, name: str) -> None:
        raise NotImplementedError

    def _register(self, config: SiteConfig, row: cmd.StoredSite) -> None:
        raise NotImplementedError

    @staticmethod
    def _stored_body(row: cmd.StoredSite) -> dict[str, Any]:
        raise NotImplementedError

    def set_site_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        raise NotImplementedError

    def set_endpoint_enabled(self, site_name: str, name: str, enabled: bool) -> dict[str, Any]:
        raise NotImplementedError

    # -- the sites this instance runs -------------------------------------------------
    # The controller consults `runs_site` only in `_start_site` (and `load()` passes
    # `sync_instance`); the ledger consults its own `runs_site` in `disable`.

    #: cluster: the instance name `load()`'s SyncConfig records as declaring its sites (SPEC 10)
    sync_instance: str | None = None

    #: None: a single instance, which runs every site; else the cluster's "do I hold it now"
    _runs_filter: Callable[[str], bool] | None = None

    def set_site_filter(self, runs: Callable[[str], bool] | None) -> None:
        """Run only the sites `runs` accepts (set before `load()`; the lease manager's `owns`);
        the ledger stores nothing for the others (their owner does)."""
        self._runs_filter = runs
        self.ledger.runs_site = runs

    def runs_site(self, name: str) -> bool:
        """Whether this instance may run `name` now (always, outside a cluster)."""
        runs = self._runs_filter
        return runs is None or runs(name)

    def adopt_site(self, name: str) -> bool:
        """This instance just got `name`'s lease: start its actors if it is enabled.

        A site created on another instance since `load()` is read from storage first.
        Returns whether the site's actors were started.
        """
        with self._lock:
            if name not in self._sites:  # created elsewhere: refresh_site starts it (we hold it)
                return self.refresh_site(name) and self._sites[name].enabled and self.runs_site(name)
            if not self._sites[name].enabled or not self.runs_site(name):
                return False
            self._stop_site(name)  # never two supervisors for one site
            self._start_site(name)
            return True

    def release_site(self, name: str) -> None:
        """This instance lost (or handed over) `name`'s lease: stop its actors now.

        Nothing is written for the site's endpoints (the new owner records their states);
        this instance's ledger shows them `disabled`, "runs on another instance", until the
        cluster runner mirrors the owner's stored states into it.
        """
        # The actors must stop before the lease can expire: a command holding the lock (a
        # storage command waiting on a stalled database) must not delay that for long.
        locked = self._lock.acquire(timeout=1.0)
        try:
            site = self._sites.get(name)
            self._stop_site(name)
            if site is None:
                return
            now = time.time()
            for endpoint_id in site.endpoint_ids.values():
                self.ledger.mirror(endpoint_id, state=states.DISABLED, since=now, reason="runs on another instance",
                                   down_since=None)  # fmt: skip
        finally:
            if locked:
                self._lock.release()

    def _stored_row(self, name: str) -> cmd.StoredSite | None:
        rows = self.storage.command(cmd.LoadSites((name,)), _ASK_TIMEOUT_S)
        return next((r for r in rows if r.name == name), None)

    def refresh_flags(self, name: str) -> None:
        """Another instance stored new enabled flags for `name` (or its endpoints): apply them
        here through the usual command paths (not stored again: see cluster.runner.RemoteAwareStorage)."""
        with self._lock:
            row = self._stored_row(name)
            site = self._sites.get(name)
            if row is None or site is None:
                self.refresh_site(name)
                return
            if site.enabled != row.enabled:
                self.set_site_enabled(name, row.enabled)
            for ep in row.endpoints:
                if ep.name in site.endpoint_ids and site.endpoint_enabled.get(ep.name) != ep.enabled:
                    self.set_endpoint_enabled(name, ep.name, ep.enabled)

    def refresh_site(self, name: str) -> bool:
        """Another instance created, replaced or deleted `name`: read it from storage again
        (its actors here are restarted when this instance runs it). Returns whether it exists.

        A site this instance's YAML declares keeps its YAML config (with secrets); any
        other is run from its stored config.
        """
        with self._lock:
            row = self._stored_row(name)
            site = self._sites.get(name)
            signatures = self._site_signatures
            signature = None if row is None else (row.enabled, row.config_json, tuple(
                (ep.name, ep.id, ep.kind, ep.enabled, ep.config_json) for ep in row.endpoints))
            if site is not None and signature is not None and signatures.get(name) == signature:
                return True  # already in line (e.g. adopted before the announcement arrived)
            signatures.pop(name, None)
            if site is not None:
                self._stop_site(name)
                for endpoint_id in site.endpoint_ids.values():
                    self.ledger.remove(endpoint_id)
                self._views.forget(list(site.endpoint_ids.values()))
                del self._sites[name]
            if row is None:
                return False
            declared = site.config if site is not None and site.origin == "config" else None
            try:
                config = declared if declared is not None and row.origin == "config" else parse_site_body(
                    self._stored_body(row))
            except Exception as err:  # noqa: BLE001 - a stored config that no longer validates: keep the daemon up
                logger.error("site %s: stored config is invalid, not started: %s", name, err)
                config = SiteConfig(name=row.name, enabled=False, endpoints=())
            self._register(config, row)
            signatures[name] = signature
            if row.enabled:
                self._start_site(name)
            return True
