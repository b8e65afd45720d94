"""The controller's views (SPEC section 6): sites and endpoints with their live states.

Read from the controller's configuration (its sites, ids and enabled flags, copied under
its lock) and the ledger (one of its own locks); views are built outside both, so a
listing of thousands of endpoints never holds back a command.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from fieldwatch.config.model import EndpointConfig, SiteConfig
from fieldwatch.config.redact import endpoint_public_dict
from fieldwatch.errors import NotFoundError
from fieldwatch.kinds import KINDS
from fieldwatch.ledger import EndpointLedger
from fieldwatch.status import EndpointStatus
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.views import ViewCache, endpoint_view

__all__ = ["SiteEntry", "SiteViews"]


@dataclass
class SiteEntry:
    """One site as the controller holds it: its config, stored flags and endpoint ids."""

    config: SiteConfig
    enabled: bool
    origin: str
    endpoint_ids: dict[str, int] = field(default_factory=dict)
    endpoint_enabled: dict[str, bool] = field(default_factory=dict)
    #: each endpoint's config without secrets, built once (views share it read-only)
    public: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: what listings read of this site (see Controller._site_parts); None = rebuild
    parts: list[tuple[EndpointConfig, int, bool, dict[str, Any]]] | None = None


class SiteViews:
    """The read side of `fieldwatch.controller.Controller` (which sets these attributes)."""

    root: pykka.ActorRef[Any]
    ledger: EndpointLedger
    storage: StorageGateway
    queries: Any
    site_owner: Callable[[str], str | None]
    _lock: threading.RLock
    _sites: dict[str, SiteEntry]
    _started: bool
    _views: ViewCache

    def _site(self, name: str) -> SiteEntry:
        site = self._sites.get(name)
        if site is None:
            raise NotFoundError(f"no site named {name!r}")
        return site

    def alive(self) -> bool:
        """The root supervisor runs."""
        return bool(self.root.is_alive())

    def ready(self) -> tuple[bool, str | None]:
        """The tree is started and storage is writable."""
        if not self.alive():
            return False, "root supervisor is not running"
        if not self._started:
            return False, "starting"
        stats = self.storage.stats()
        if not stats.ready:
            return False, f"storage: {stats.reason or 'not writable'}"
        return True, None

    def endpoint_view(self, status: EndpointStatus, config: EndpointConfig | None) -> dict[str, Any]:
        """SPEC section 6 endpoint shape (state after the reader freshness rule)."""
        return endpoint_view(
            status,
            status.site,
            status.name,
            status.kind,
            status.enabled,
            endpoint_public_dict(config) if config is not None else None,
            time.time(),
        )

    def _site_parts(self, name: str) -> tuple[bool, list[tuple[EndpointConfig, int, bool, dict[str, Any]]]]:
        """What a site view needs from the controller, copied under its lock (no views built)."""
        with self._lock:
            site = self._site(name)
            if site.parts is None:  # built once per change of the site's endpoints or their flags
                site.parts = [
                    (ep, site.endpoint_ids[ep.name], site.endpoint_enabled.get(ep.name, False), site.public[ep.name])
                    for ep in site.config.endpoints
                    if ep.name in site.endpoint_ids
                ]
            return site.enabled, site.parts

    def _site_views(self, name: str) -> tuple[bool, str]:
        """The site's enabled flag and its endpoints' views as JSON texts joined by ", ", from the
        view cache.

        Only the site's shape is copied under the controller's lock; the ledger is read in
        one of its own locks (only the rows changed since the last listing) and the views are
        built outside both, so a listing of thousands of endpoints never holds back a command.
        """
        enabled, parts = self._site_parts(name)
        return enabled, self._views.site_texts(name, parts, self.ledger, time.time())

    def get_site(self, name: str) -> dict[str, Any]:
        """One site with its endpoints' live states (the ledger read in one lock, outside ours)."""
        enabled, parts = self._site_parts(name)
        rows = self.ledger.rows([endpoint_id for _, endpoint_id, _, _ in parts])
        now = time.time()
        endpoints = [
            endpoint_view(row, name, ep.name, ep.kind, ep_enabled, public, now)
            for (ep, _, ep_enabled, public), row in zip(parts, rows, strict=True)
            if row is not None
        ]
        return {"name": name, "enabled": enabled, "owner": self.site_owner(name), "endpoints": endpoints}

    def site_names(self) -> list[str]:
        """Every site's name (cheap: no endpoint views), for listings, the cluster view and metrics."""
        with self._lock:
            return sorted(self._sites)

    def site_flags(self) -> dict[str, bool]:
        """Site name -> stored enabled flag, without the command lock (the page never waits on a command)."""
        return {name: site.enabled for name, site in list(self._sites.items())}

    def list_sites(self) -> list[dict[str, Any]]:
        """Every site, by name (a site deleted meanwhile is left out)."""
        sites = []
        for name in self.site_names():
            try:
                sites.append(self.get_site(name))
            except NotFoundError:
                continue
        return sites

    def sites_json(self) -> str:
        """`list_sites()` as the JSON body of `GET /api/v1/sites` (a page), from cached view texts."""
        parts = []
        for name in self.site_names():
            try:
                enabled, endpoints = self._site_views(name)
            except NotFoundError:
                continue
            parts.append(
                f'{{"name": {json.dumps(name, ensure_ascii=True)}, '
                f'"enabled": {"true" if enabled else "false"}, '
                f'"owner": {json.dumps(self.site_owner(name), ensure_ascii=True)}, '
                f'"endpoints": [{endpoints}]}}'
            )
        return f'{{"items": [{", ".join(parts)}], "next": null}}'

    def get_endpoint(self, site_name: str, name: str) -> dict[str, Any]:
        """One endpoint with its latest readings."""
        with self._lock:
            site = self._site(site_name)
            endpoint_id = site.endpoint_ids.get(name)
            config = next((e for e in site.config.endpoints if e.name == name), None)
            status = self.ledger.get(endpoint_id) if endpoint_id is not None else None
            if status is None or config is None:
                raise NotFoundError(f"no endpoint {name!r} in site {site_name!r}")
            view = endpoint_view(
                status,
                site_name,
                name,
                status.kind,
                site.endpoint_enabled.get(name, False),
                site.public.get(name),
                time.time(),
            )
        view["readings"] = self.queries.latest_readings(status.endpoint_id) if self.queries is not None else []
        kind = KINDS.get(status.kind)
        if kind is not None and kind.view_extras is not None and self.queries is not None:
            view.update(kind.view_extras(self.queries, status.endpoint_id))
        return view

    def endpoint_ids(self) -> dict[tuple[str, str], int]:
        """(site, endpoint) -> id, for tests and tools."""
        with self._lock:
            return {(s, e): i for s, site in self._sites.items() for e, i in site.endpoint_ids.items()}
