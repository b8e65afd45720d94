"""The OpenAPI 3.0 document of the HTTP API, served at /openapi.json (kept true by a test): the route table.

Its building blocks are in `openapi_parts`, the object schemas in `openapi_schemas`, the status page's
routes in `openapi_page`.
"""

from __future__ import annotations

from typing import Any

from fieldwatch import __version__
from fieldwatch.http.openapi_page import page_paths
from fieldwatch.http.openapi_parts import (
    _API,
    _NDJSON,
    _NOT_ALLOWED,
    _OBJ,
    _error,
    _get,
    _json,
    _mutating,
    _page,
    _path,
    _readings_page,
    _ref,
)
from fieldwatch.http.openapi_schemas import schemas

__all__ = ["openapi_document"]


def _conflicting(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["409"] = _error("a site of that name exists")
    return op


def _finish(paths: dict[str, Any]) -> None:
    """Every operation lists 405; each collection's cursor gets its own format (`events-cursor`, ...)."""
    for path, item in paths.items():
        kind = path.rsplit("/", 1)[-1].replace("-", "_") + "-cursor"
        for method, op in item.items():
            if method == "parameters":
                continue
            op["responses"].setdefault("405", _NOT_ALLOWED)
            op["parameters"] = [
                {**p, "schema": {**p["schema"], "format": kind}} if p["name"] == "cursor" else p
                for p in op.get("parameters", [])
            ]
            if not op["parameters"]:
                del op["parameters"]


def _followable(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["200"]["content"].update(_NDJSON)
    op["responses"]["503"] = _error("too many follow streams open")
    return op


def openapi_document() -> dict[str, Any]:
    """The whole document: every route, parameter and response of SPEC section 6."""
    site_ok = _json(_ref("Site"), "the site as stored")
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "200 while the root supervisor runs",
                "responses": {"200": _json(_ref("Status"), "alive"), "503": _error("not running")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "200 once the tree is started and storage writable",
                "responses": {"200": _json(_ref("Status"), "ready"), "503": _error("not ready, with the reason")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text exposition",
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": _json(_OBJ, "OpenAPI 3.0")}}},
        f"{_API}/sites": {
            "get": _get("every site with its endpoints and their states", _json(_page("Site"), "sites")),
            "post": _conflicting(_mutating("create a site at runtime", "201", site_ok, body="SiteBody")),
        },
        f"{_API}/sites/{{site}}": {
            "parameters": [_path("site")],
            "get": _get("one site", site_ok, not_found=True),
            "put": _mutating("replace a site's config (the whole site)", "200", site_ok, body="SiteReplaceBody"),
            "delete": _mutating("delete a site (its actors stop first)", "204", {"description": "deleted"}),
        },
        f"{_API}/endpoints/{{site}}/{{endpoint}}": {
            "parameters": [_path("site"), _path("endpoint")],
            "get": _get(
                "one endpoint with its latest readings", _json(_ref("EndpointDetail"), "the endpoint"), not_found=True
            ),
        },
        f"{_API}/events": {
            "get": _followable(
                _get(
                    "the connection event log, newest first (follow: oldest first, then new ones)",
                    _json(_page("Event"), "events"),
                    "site",
                    "endpoint",
                    "level",
                    "since",
                    "limit",
                    "cursor",
                    "follow",
                    "max_s",
                )
            )
        },
        f"{_API}/alerts": {
            "get": _get(
                "alerts, newest first",
                _json(_page("Alert"), "alerts"),
                "site",
                "endpoint",
                "active",
                "since",
                "limit",
                "cursor",
            )
        },
        f"{_API}/readings": {
            "get": _get(
                "stored readings newest first (by their source time, else their receive time); with `step`, "
                "rollup buckets newest first, from the coarsest rollup tier whose width divides `step`",
                _json(_readings_page(), "readings, or buckets when `step` is given"),
                "site",
                "endpoint",
                "name",
                "device",
                "since",
                "until",
                "step",
                "limit",
                "cursor",
            )
        },
        f"{_API}/topics": {
            "get": _get("discovered topics", _json(_page("Topic"), "topics"), "site", "endpoint", "limit", "cursor")
        },
        f"{_API}/parse-errors": {
            "get": _get(
                "payloads a parser rejected, newest first (each also acknowledged to the broker)",
                _json(_page("ParseError"), "parse errors"),
                "site",
                "endpoint",
                "since",
                "limit",
                "cursor",
            )
        },
        f"{_API}/tree": {"get": _get("the live supervision tree", _json(_page("TreeNode"), "actors by path"))},
        f"{_API}/cluster": {
            "get": _get(
                "the instances sharing the database and each site's owner and lease epoch",
                _json(_ref("Cluster"), "instances and site owners"),
            )
        },
        f"{_API}/logs": {
            "get": _followable(
                _get(
                    "the daemon log tailed (oldest first); follow streams new lines across rotation",
                    _json(_page("LogLine"), "log lines"),
                    "lines",
                    "follow",
                    "level",
                    "site",
                    "max_s",
                )
            )
        },
    }
    paths[f"{_API}/logs"]["get"]["responses"]["404"] = _error("no log file and no in-memory log")
    for action, what in (("enable", "enable a site: its actors start"), ("disable", "disable a site: actors stop")):
        paths[f"{_API}/sites/{{site}}/{action}"] = {
            "parameters": [_path("site")],
            "post": _mutating(what, "202", site_ok),
        }
    for action in ("enable", "disable", "restart"):
        paths[f"{_API}/endpoints/{{site}}/{{endpoint}}/{action}"] = {
            "parameters": [_path("site"), _path("endpoint")],
            "post": _mutating(f"{action} one endpoint", "202", site_ok),
        }
    for action in ("enable", "disable"):
        paths[f"{_API}/topics/{action}"] = {
            "post": _mutating(
                f"{action} processing of one discovered topic",
                "200",
                _json(_ref("Topic"), "the topic row"),
                body="TopicBody",
            )
        }
    paths.update(page_paths())
    _finish(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "fieldwatch",
            "version": __version__,
            "description": "Live status, commands, events, logs and metrics of field connections.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
