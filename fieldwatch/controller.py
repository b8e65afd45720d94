"""Commands: the one place the API and the tree meet (the views: `fieldwatch.controller_views`).

A command is stored first (through the persistence actor), then applied to the
tree at once (actors started or stopped before the reply). Site changes touch
only that site's supervisor; no other connection is restarted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pykka

from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.connection import EndpointContext
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.actors.supervisor import (
    AddChild,
    ChildRef,
    ChildSpec,
    RemoveChild,
    RestartChild,
    Supervisor,
    SupervisorOptions,
)
from fieldwatch.actors.topics import TopicSwitch
from fieldwatch.actors.tree import TreeView
from fieldwatch.config.model import EndpointConfig, SiteConfig
from fieldwatch.config.redact import endpoint_public_dict
from fieldwatch.config.sites import parse_site_body
from fieldwatch.controller_cluster import ClusterSites
from fieldwatch.controller_views import SiteEntry, SiteViews
from fieldwatch.errors import ConfigError, NotFoundError
from fieldwatch.kinds import KINDS
from fieldwatch.ledger import EndpointLedger
from fieldwatch.policy import Backoff, ChildPolicy, HealthCheck, SupervisionPolicy
from fieldwatch.storage import commands as cmd
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.views import ViewCache

__all__ = ["Controller", "site_spec_of"]

logger = logging.getLogger(__name__)

_ASK_TIMEOUT_S = 10.0

#: A site supervisor with thousands of children can be slow to answer under load
#: without being hung: replacing it would restart every one of its endpoints.
_SUPERVISOR_POLICY = ChildPolicy(
    backoff=Backoff(initial_s=0.5, max_s=30.0, multiplier=2.0, jitter=0.1, reset_after_s=120.0),
    health_check=HealthCheck(interval_s=5.0, timeout_s=30.0, failures=3),
    shutdown_timeout_s=30.0,
)


def _endpoint_spec_of(ep: EndpointConfig, full: bool) -> cmd.EndpointSpec:
    data = _endpoint_full_dict(ep) if full else endpoint_public_dict(ep)
    return cmd.EndpointSpec(ep.name, ep.kind, ep.enabled, json.dumps(data, sort_keys=True))


def _endpoint_full_dict(ep: EndpointConfig) -> dict[str, Any]:
    """The endpoint config with secrets (stored for API-created endpoints only)."""
    data: dict[str, Any] = {"name": ep.name, "kind": ep.kind, "enabled": ep.enabled}
    data.update({k: v for k, v in asdict(ep.options).items() if v is not None})
    if ep.supervision:
        data["supervision"] = dict(ep.supervision)
    return data


def site_spec_of(site: SiteConfig, *, full: bool = False) -> cmd.SiteSpec:
    """The storage spec of a site config (`full` keeps secrets: API-created sites)."""
    endpoints = tuple(_endpoint_spec_of(ep, full) for ep in site.endpoints)
    return cmd.SiteSpec(site.name, site.enabled, json.dumps({"name": site.name}), endpoints)


class Controller(SiteViews, ClusterSites):
    """Applies commands to storage and the tree (its views of SPEC section 6: `SiteViews`; its cluster side: `ClusterSites`)."""

    def __init__(
        self,
        *,
        root: pykka.ActorRef[Any],
        ledger: EndpointLedger,
        tree: TreeView,
        storage: StorageGateway,
        scheduler: Scheduler,
        policy: SupervisionPolicy,
        queries: Any = None,
    ) -> None:
        self.root = root
        self.ledger = ledger
        self.tree = tree
        self.storage = storage
        self.scheduler = scheduler
        self.policy = policy
        self.queries = queries
        self._lock = threading.RLock()  # one command at a time: commands are rare and short
        self._sites: dict[str, SiteEntry] = {}
        self._started = False
        #: the instance that runs a site (SPEC 6 `owner`); the daemon points it at its cluster view
        self.site_owner: Callable[[str], str | None] = lambda _site: None
        self._views = ViewCache()
        #: cluster: each site's stored shape as last applied by `refresh_site`
        self._site_signatures: dict[str, Any] = {}

    # -- start-up ----------------------------------------------------------------

    def load(self, config_sites: tuple[SiteConfig, ...]) -> None:
        """Sync the YAML into storage, then start a supervisor per enabled site."""
        # SyncConfig writes a row per endpoint (20,000 took over 10 s on a loaded 2-core machine).
        timeout = _ASK_TIMEOUT_S + 0.002 * sum(len(s.endpoints) for s in config_sites)
        stored = self.storage.command(cmd.SyncConfig([site_spec_of(s) for s in config_sites], self.sync_instance), timeout)
        declared = {s.name: s for s in config_sites}
        with self._lock:
            for row in stored:
                config = declared.get(row.name)
                if config is None:  # created through the API earlier: its config is stored
                    try:
                        config = parse_site_body(self._stored_body(row))
                    except Exception as err:  # noqa: BLE001 - a stored config that no longer validates: keep the daemon up
                        logger.error("site %s: stored config is invalid, not started (listed without its "
                                     "endpoints, so it can be replaced or deleted): %s", row.name, err)  # fmt: skip
                        self._register(SiteConfig(name=row.name, enabled=False, endpoints=()), row)
                        continue
                self._register(config, row)
                if row.enabled:
                    self._start_site(row.name)
            self._started = True

    @staticmethod
    def _stored_body(row: cmd.StoredSite) -> dict[str, Any]:
        return {
            "name": row.name,
            "enabled": row.enabled,
            "endpoints": [json.loads(ep.config_json) | {"name": ep.name, "kind": ep.kind} for ep in row.endpoints],
        }

    def _register(self, config: SiteConfig, row: cmd.StoredSite) -> None:
        site = SiteEntry(config, row.enabled, row.origin)
        site.public = {ep.name: endpoint_public_dict(ep) for ep in config.endpoints}
        by_name = {ep.name: ep for ep in row.endpoints}
        for ep in config.endpoints:
            stored = by_name.get(ep.name)
            if stored is None:
                continue
            site.endpoint_ids[ep.name] = stored.id
            site.endpoint_enabled[ep.name] = stored.enabled
            self.ledger.register(
                stored.id,
                site=config.name,
                name=ep.name,
                kind=ep.kind,
                enabled=stored.enabled and row.enabled,
                generation=stored.generation,
                restarts=stored.restarts,
                reconnects=stored.reconnects,
            )
        self._sites[config.name] = site

    # -- the tree ----------------------------------------------------------------

    def _site_child_id(self, name: str) -> str:
        return f"sites/{name}"

    def _endpoint_child_spec(self, site: SiteEntry, ep: EndpointConfig) -> ChildSpec:
        endpoint_id = site.endpoint_ids[ep.name]
        policy = self.policy.for_endpoint(ep.kind, ep.supervision)
        site_name = site.config.name
        context = EndpointContext(endpoint_id, site_name, ep, policy, self.ledger, self.storage, self.scheduler,
                                  holds=lambda: self.runs_site(site_name))  # fmt: skip
        cls = KINDS[ep.kind].actor_class()

        def _next_generation(restarts: int) -> int:
            return self.ledger.begin(endpoint_id, restarts).generation

        def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
            return cls.start(ctx, context)

        return ChildSpec(
            id=ep.name,
            start=_start,
            policy=policy,
            kind=ep.kind,
            next_generation=_next_generation,
        )

    def _site_specs(self, name: str) -> list[ChildSpec]:
        site = self._sites[name]
        specs = []
        for ep in site.config.endpoints:
            if not (site.endpoint_enabled.get(ep.name, False) and ep.name in site.endpoint_ids):
                continue
            try:
                specs.append(self._endpoint_child_spec(site, ep))
            except Exception as err:  # noqa: BLE001 - a kind that cannot load must not take the site down
                self.ledger.fault(site.endpoint_ids[ep.name], f"cannot load the {ep.kind} actor: {err}")
        return specs

    def _start_site(self, name: str) -> None:
        if not self.runs_site(name):
            return  # cluster: another instance owns the site (adopt_site starts it here if that changes)
        options = SupervisorOptions(self.policy.sites.strategy, self.policy.sites.intensity, self.tree)
        specs_now = self._site_specs(name)

        def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
            # A restarted site supervisor starts the endpoints enabled at that moment.
            return Supervisor.start(ctx, options, self._site_specs(name) if self._started else specs_now)

        spec = ChildSpec(id=self._site_child_id(name), start=_start, policy=_SUPERVISOR_POLICY, kind="supervisor")
        self.root.ask(AddChild(spec), timeout=_ASK_TIMEOUT_S)
        if not self.runs_site(name):  # cluster: the lease was lost while starting (release_site may have missed it)
            self._stop_site(name)
            return
        site = self._sites[name]
        for ep_name, endpoint_id in site.endpoint_ids.items():
            if site.endpoint_enabled.get(ep_name):
                self.ledger.starting(endpoint_id)

    def _stop_site(self, name: str) -> None:
        try:
            self.root.ask(RemoveChild(self._site_child_id(name)), timeout=_ASK_TIMEOUT_S)
        except (NotFoundError, pykka.ActorDeadError):
            pass  # not running (or the root already gave up and stopped everything)

    def _site_supervisor(self, name: str) -> pykka.ActorRef[Any] | None:
        ref: Any = self.root.ask(ChildRef(self._site_child_id(name)), timeout=_ASK_TIMEOUT_S)
        return ref if isinstance(ref, pykka.ActorRef) else None

    # -- commands ----------------------------------------------------------------

    def set_site_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Store the flag, then start or stop the site's actors at once."""
        with self._lock:
            site = self._site(name)
            self.storage.command(cmd.SetSiteEnabled(name, enabled), _ASK_TIMEOUT_S)
            was = site.enabled
            site.enabled = enabled
            if enabled and not was:
                self._start_site(name)
            elif was and not enabled:
                self._stop_site(name)
                for endpoint_id in site.endpoint_ids.values():
                    self.ledger.disable(endpoint_id, "site disabled by command")
            return self.get_site(name)

    def set_endpoint_enabled(self, site_name: str, name: str, enabled: bool) -> dict[str, Any]:
        """Store one endpoint's flag, then start or stop its actor at once."""
        with self._lock:
            site = self._site(site_name)
            if name not in site.endpoint_ids:
                raise NotFoundError(f"no endpoint {name!r} in site {site_name!r}")
            self.storage.command(cmd.SetEndpointEnabled(site_name, name, enabled), _ASK_TIMEOUT_S)
            was = site.endpoint_enabled.get(name, False)
            site.endpoint_enabled[name] = enabled
            site.parts = None
            endpoint_id = site.endpoint_ids[name]
            sup = self._site_supervisor(site_name) if site.enabled else None
            if enabled and not was:
                if sup is not None:
                    ep = next(e for e in site.config.endpoints if e.name == name)
                    sup.ask(AddChild(self._endpoint_child_spec(site, ep)), timeout=_ASK_TIMEOUT_S)
                    self.ledger.starting(endpoint_id)
            elif was and not enabled:
                if sup is not None:
                    try:
                        sup.ask(RemoveChild(name), timeout=_ASK_TIMEOUT_S)
                    except NotFoundError:
                        pass
                self.ledger.disable(endpoint_id, "endpoint disabled by command")
            return self.get_site(site_name)

    def restart_endpoint(self, site_name: str, name: str) -> dict[str, Any]:
        """Replace the endpoint's actor with a new generation now."""
        with self._lock:
            site = self._site(site_name)
            if name not in site.endpoint_ids:
                raise NotFoundError(f"no endpoint {name!r} in site {site_name!r}")
            sup = self._site_supervisor(site_name) if site.enabled else None
            if sup is not None and site.endpoint_enabled.get(name):
                sup.ask(RestartChild(name), timeout=_ASK_TIMEOUT_S)
            return self.get_site(site_name)

    def create_site(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, store and start a new site; no other site is touched."""
        config = parse_site_body(body)
        with self._lock:
            row = self.storage.command(cmd.CreateSite(site_spec_of(config, full=True)), _ASK_TIMEOUT_S)
            self._register(config, row)
            if row.enabled:
                self._start_site(config.name)
            return self.get_site(config.name)

    def replace_site(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Stop the site's actors, store the new config, start it again; others untouched."""
        body = dict(body)
        body.setdefault("name", name)
        config = parse_site_body(body)
        if config.name != name:
            raise ConfigError([f"name: {config.name!r} does not match the URL's site {name!r}"])
        with self._lock:
            old = self._site(name)
            self._stop_site(name)
            row = self.storage.command(cmd.ReplaceSite(site_spec_of(config, full=True)), _ASK_TIMEOUT_S)
            kept = {ep.id for ep in row.endpoints}
            for endpoint_id in old.endpoint_ids.values():
                if endpoint_id not in kept:
                    self.ledger.remove(endpoint_id)
            self._views.forget(list(old.endpoint_ids.values()))
            self._register(config, row)
            if row.enabled:
                self._start_site(name)
            else:
                for endpoint_id in self._sites[name].endpoint_ids.values():
                    self.ledger.disable(endpoint_id, "site disabled")
            return self.get_site(name)

    def delete_site(self, name: str) -> None:
        """Stop the site's actors first, then delete its rows."""
        with self._lock:
            site = self._site(name)
            self._stop_site(name)
            for endpoint_id in site.endpoint_ids.values():
                self.ledger.remove(endpoint_id)
            self._views.forget(list(site.endpoint_ids.values()))
            self.storage.command(cmd.DeleteSite(name), _ASK_TIMEOUT_S)
            del self._sites[name]

    def set_topic_active(self, site_name: str, endpoint: str, topic: str, active: bool) -> dict[str, Any]:
        """Switch processing of one discovered topic; applied by the actor at once."""
        with self._lock:
            site = self._site(site_name)
            endpoint_id = site.endpoint_ids.get(endpoint)
            if endpoint_id is None:
                raise NotFoundError(f"no endpoint {endpoint!r} in site {site_name!r}")
            changed = self.storage.command(cmd.SetTopicActive(endpoint_id, topic, active), _ASK_TIMEOUT_S)
            self._notify_topic(site_name, endpoint, topic, active)
            return {"site": site_name, "endpoint": endpoint, "topic": topic, "is_active": active, "changed": changed}

    def _notify_topic(self, site_name: str, endpoint: str, topic: str, active: bool) -> None:
        sup = self._site_supervisor(site_name) if self._sites[site_name].enabled else None
        if sup is None:
            return
        ref: Any = sup.ask(ChildRef(endpoint), timeout=_ASK_TIMEOUT_S)
        if isinstance(ref, pykka.ActorRef):
            ref.tell(TopicSwitch(topic, active))

    def reset(self, root: pykka.ActorRef[Any]) -> None:
        """Forget the running tree (it was stopped) before `load()` on a new root."""
        with self._lock:
            self.root = root
            self._started = False
            self._sites.clear()

    def stop_sites(self) -> None:
        """Stop every site's actors (shutdown: before storage is flushed and stopped)."""
        with self._lock:
            self._started = False
            for name in sorted(self._sites, reverse=True):
                if self._sites[name].enabled:
                    self._stop_site(name)
