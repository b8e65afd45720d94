"""`create_app(deps)`: the Falcon app of SPEC section 6, built from injected collaborators."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import falcon
import prometheus_client

from fieldwatch.actors.tree import TreeView
from fieldwatch.cluster.view import ClusterSource
from fieldwatch.http import resources as r
from fieldwatch.http.auth import TokenAuth
from fieldwatch.http.errors import install_error_handlers
from fieldwatch.http.gate import HeadAsGet, RequestGate, RouteTable
from fieldwatch.http.logtail import StreamStats
from fieldwatch.http.metrics import FieldwatchCollector
from fieldwatch.http.page import STATIC_DIR, OverviewResource, PageHeaders, PageResource
from fieldwatch.http.readside import Queries, StorageQueries
from fieldwatch.ledger import EndpointLedger
from fieldwatch.logring import LogRing
from fieldwatch.storage.gateway import StorageStats

__all__ = ["AppDeps", "ControllerLike", "FieldwatchApp", "StatsSource", "create_app"]

logger = logging.getLogger(__name__)


class ControllerLike(Protocol):
    """What the API asks of `fieldwatch.controller.Controller` (commands and live views)."""

    def alive(self) -> bool:
        """The root supervisor runs."""
        ...

    def ready(self) -> tuple[bool, str | None]:
        """The tree is started and storage is writable; else the reason."""
        ...

    def list_sites(self) -> list[dict[str, Any]]:
        """Every site with its endpoints (SPEC section 6 shapes)."""
        ...

    def sites_json(self) -> str:
        """`{"items": list_sites(), "next": null}` as JSON text (the listing's body)."""
        ...

    def get_site(self, name: str) -> dict[str, Any]:
        """One site; NotFoundError when unknown."""
        ...

    def site_flags(self) -> dict[str, bool]:
        """Site name -> enabled, without waiting on a command in progress (the status page)."""
        ...

    def get_endpoint(self, site: str, name: str) -> dict[str, Any]:
        """One endpoint with its latest readings."""
        ...

    def set_site_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Store and apply the flag; the site as stored."""
        ...

    def set_endpoint_enabled(self, site: str, name: str, enabled: bool) -> dict[str, Any]:
        """Store and apply the flag; the site as stored."""
        ...

    def restart_endpoint(self, site: str, name: str) -> dict[str, Any]:
        """Replace the endpoint's actor; the site as stored."""
        ...

    def create_site(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a site (ConfigError, ConflictError); the site."""
        ...

    def replace_site(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a site's config; the site."""
        ...

    def delete_site(self, name: str) -> None:
        """Stop the site's actors and delete its rows."""
        ...

    def set_topic_active(self, site: str, endpoint: str, topic: str, active: bool) -> dict[str, Any]:
        """Switch processing of one discovered topic; the topic row."""
        ...


class StatsSource(Protocol):
    """The storage gateway as the API sees it."""

    def stats(self) -> StorageStats:
        """A snapshot of queue depth, counters, commit times and readiness."""
        ...


@dataclass(frozen=True)
class AppDeps:
    """Everything the HTTP app reads or commands; built once by the daemon."""

    controller: ControllerLike
    board: EndpointLedger
    tree: TreeView
    storage: StatsSource
    registry: prometheus_client.CollectorRegistry
    token: str | None
    log_file: str | None
    max_body_bytes: int = 1048576
    queries: Queries = field(default_factory=StorageQueries)
    #: follow streams write a blank line this often, so a gone client (or a server stop) ends them
    heartbeat_s: float = 1.0
    #: concurrent follow streams (each holds a server thread); more get a 503
    max_streams: int = 4
    streams: StreamStats = field(default_factory=StreamStats)
    #: register the app's Prometheus collector on `registry` (one app per registry); /metrics
    #: renders the collector's families either way
    register_collector: bool = True
    #: recent log lines in memory: /api/v1/logs without `logging.file`, the page's warnings
    log_ring: LogRing | None = None
    #: the status page's snapshot is rebuilt at most this often (seconds), however many pages poll
    overview_cache_s: float = 1.0

    #: the instances and site owners for /api/v1/cluster; None: this host alone owns every site
    cluster: ClusterSource | None = None


class FieldwatchApp(falcon.App):
    """The Falcon app with its `gate`: what `serve()` may refuse before reading a body."""

    gate: RequestGate


def create_app(deps: AppDeps) -> FieldwatchApp:
    """The WSGI app: routes of SPEC section 6, auth, body limit, JSON errors, metrics collector."""
    routes = RouteTable()
    auth = TokenAuth(deps.token)
    auth.routes = routes
    middleware: list[Any] = [HeadAsGet(routes), r.BodyLimit(deps.max_body_bytes), auth, PageHeaders()]
    app = FieldwatchApp(middleware=middleware)
    routes.app = app
    app.gate = RequestGate(routes, auth, deps.max_body_bytes)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    # ASCII JSON: a string that cannot be encoded (a lone surrogate stored by an older version)
    # is rendered as its \u escape instead of failing the whole response.
    ascii_json = falcon.media.JSONHandler(dumps=functools.partial(json.dumps, ensure_ascii=True))
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = ascii_json
    app.resp_options.secure_cookies_by_default = True
    install_error_handlers(app)
    collector = FieldwatchCollector(deps.board, deps.tree, deps.storage, getattr(deps.cluster, "owned_sites", None))
    if deps.register_collector:
        deps.registry.register(collector)

    app.add_route("/", PageResource())
    app.add_static_route("/static", STATIC_DIR)
    app.add_route("/healthz", r.Health(deps))
    app.add_route("/readyz", r.Ready(deps))
    app.add_route("/metrics", r.MetricsResource(deps, collector))
    app.add_route("/openapi.json", r.OpenApiResource())
    api = "/api/v1"
    app.add_route(f"{api}/sites", r.SiteCollection(deps))
    app.add_route(f"{api}/sites/{{site}}", r.SiteItem(deps))
    sites, endpoints, topics = r.SiteCommand(deps), r.EndpointCommand(deps), r.TopicCommand(deps)
    for action in ("enable", "disable"):
        app.add_route(f"{api}/sites/{{site}}/{action}", sites, suffix=action)
    app.add_route(f"{api}/endpoints/{{site}}/{{endpoint}}", r.EndpointItem(deps))
    for action in ("enable", "disable", "restart"):
        app.add_route(f"{api}/endpoints/{{site}}/{{endpoint}}/{action}", endpoints, suffix=action)
    app.add_route(f"{api}/events", r.EventCollection(deps))
    app.add_route(f"{api}/alerts", r.AlertCollection(deps))
    app.add_route(f"{api}/readings", r.ReadingCollection(deps))
    app.add_route(f"{api}/topics", r.TopicCollection(deps))
    app.add_route(f"{api}/parse-errors", r.ParseErrorCollection(deps))
    for action in ("enable", "disable"):
        app.add_route(f"{api}/topics/{action}", topics, suffix=action)
    app.add_route(f"{api}/tree", r.TreeResource(deps))
    app.add_route(f"{api}/cluster", r.ClusterResource(deps))
    app.add_route(f"{api}/logs", r.LogResource(deps))
    app.add_route(f"{api}/overview", OverviewResource(deps))
    return app
