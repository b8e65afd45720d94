"""Health, readiness, Prometheus metrics, the supervision tree and the OpenAPI document."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import falcon

from fieldwatch.http import params
from fieldwatch.http.metrics import CONTENT_TYPE, FieldwatchCollector
from fieldwatch.http.openapi import openapi_document
from fieldwatch.http.resources._common import Resource, page

if TYPE_CHECKING:
    from fieldwatch.http.app import AppDeps

__all__ = ["Health", "MetricsResource", "OpenApiResource", "Ready", "TreeResource"]


class Health(Resource):
    """`GET /healthz`: 200 while the root supervisor runs, else 503."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Liveness."""
        if not self.deps.controller.alive():
            raise falcon.HTTPServiceUnavailable(title="Not alive", description="the root supervisor is not running")
        resp.media = {"status": "ok"}


class Ready(Resource):
    """`GET /readyz`: 200 once the tree is started and storage is writable, else 503 with the reason."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Readiness."""
        ready, reason = self.deps.controller.ready()
        if not ready:
            raise falcon.HTTPServiceUnavailable(title="Not ready", description=reason or "not ready")
        resp.media = {"status": "ready"}


class MetricsResource(Resource):
    """`GET /metrics`: the injected registry in the Prometheus text format (0.0.4)."""

    def __init__(self, deps: AppDeps, collector: FieldwatchCollector) -> None:
        super().__init__(deps)
        self.collector = collector

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Render every collector of the registry now (text format whatever the Accept header)."""
        resp.data = self.collector.render(self.deps.registry)
        resp.content_type = CONTENT_TYPE


class TreeResource(Resource):
    """`GET /api/v1/tree`: every actor's path, kind, state, generation, restarts, last failure, uptime."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The live supervision tree, ordered by path."""
        params.check_known(req, ())
        resp.media = page([node.as_dict() for node in self.deps.tree.snapshot()])


class OpenApiResource:
    """`GET /openapi.json`: the OpenAPI 3.0 document of this API."""

    def __init__(self) -> None:
        self._body = json.dumps(openapi_document(), indent=1).encode("utf-8")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The document (built once)."""
        resp.data = self._body
        resp.content_type = falcon.MEDIA_JSON
