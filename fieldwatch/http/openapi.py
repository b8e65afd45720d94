"""The OpenAPI 3.0 document of the HTTP API, served at /openapi.json (kept true by a test)."""

from __future__ import annotations

from typing import Any

from fieldwatch import __version__, states
from fieldwatch.http.params import DEFAULT_LIMIT, LEVELS, MAX_LIMIT

__all__ = ["openapi_document"]

_API = "/api/v1"
_TS = {"type": "string", "format": "date-time", "nullable": True}
#: A logged record (event, parse error): its id and time, and its endpoint (null once deleted).
_LOGGED = {
    "id": {"type": "integer"},
    "time": _TS,
    "site": {"type": "string", "nullable": True},
    "endpoint": {"type": "string", "nullable": True},
}
_OBJ = {"type": "object", "additionalProperties": True}
#: A string the API stores or filters on: not empty, bounded, no NUL (SPEC section 6: an empty
#: parameter is a 400; every edge refuses NUL and lone surrogates)
_TEXT = {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000]*$"}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"}
#: `since`: RFC 3339 with a time zone, or Unix seconds
_SINCE = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": "^[0-9]{1,10}(\\.[0-9]{1,6})?$"}]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next": {"type": "string", "nullable": True, "description": "pass back as `cursor=` for the next page"},
        },
    }


def _readings_page() -> dict[str, Any]:
    paged = _page("Reading")
    paged["properties"]["items"]["items"] = {"anyOf": [_ref("Reading"), _ref("Bucket")]}
    return paged


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_P = {
    "site": _query("site", _TEXT, "only this site"),
    "endpoint": _query("endpoint", _TEXT, "only this endpoint"),
    "level": _query("level", {"type": "string", "enum": list(LEVELS)}, "this level and above"),
    "since": _query("since", _SINCE, "RFC 3339 with a time zone, or Unix seconds"),
    "limit": _query(
        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}, "page size"
    ),
    # the format is set per collection in openapi_document(): a cursor of one collection is not another's
    "cursor": _query("cursor", {"type": "string"}, "the `next` of the previous page"),
    "follow": _query("follow", {"type": "boolean", "default": False}, "stream NDJSON as new entries arrive"),
    "max_s": _query("max_s", {"type": "number", "minimum": 0, "maximum": 7 * 24 * 3600},
                    "end a followed stream after this many seconds (at most 7 days)"),
    "active": _query("active", {"type": "boolean"}, "true: open alerts only; false: resolved only"),
    "name": _query("name", _TEXT, "only readings of this name"),
    "device": _query("device", _TEXT, "only readings of this device (a topic segment)"),
    "until": _query("until", _SINCE, "before this time (exclusive): RFC 3339 with a time zone, or Unix seconds"),
    "step": _query(
        "step",
        {"type": "integer", "minimum": 60, "maximum": 366 * 86400, "multipleOf": 60},
        "bucket width in seconds: answer rollup buckets (min, max, avg, count, last) instead of readings",
    ),
    "lines": _query("lines", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "default": 200}, "lines"),
}

_BAD = _error("a bad parameter or body")
_AUTH = {"401": _error("no bearer token"), "403": _error("wrong token, or no token configured")}
_NOT_ALLOWED = _error("the route does not have this method (the Allow header lists those it has)")
_NDJSON = {"application/x-ndjson": {"schema": {"type": "string"}}}


def _get(summary: str, ok: dict[str, Any], *params: str, not_found: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    if params:
        responses["400"] = _BAD
    if not_found:
        responses["404"] = _error("no such site or endpoint")
    return {"summary": summary, "parameters": [_P[p] for p in params], "responses": responses}


def _mutating(summary: str, status: str, ok: dict[str, Any], *, body: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            status: ok,
            "400": _BAD,
            **_AUTH,
            "404": _error("no such site, endpoint or topic"),
            "503": _error("storage unavailable"),
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
        op["responses"]["413"] = _error("body too large")
    return op


def _schemas() -> dict[str, Any]:
    endpoint_props = {
        "site": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "enabled": {"type": "boolean"},
        "state": {"type": "string", "enum": list(states.ALL_STATES)},
        "since": _TS,
        "reason": {"type": "string", "nullable": True},
        "down_since": _TS,
        "last_data_at": _TS,
        "generation": {"type": "integer"},
        "restarts": {"type": "integer"},
        "reconnects": {"type": "integer"},
        "config": _OBJ,
    }
    site_body = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": _NAME,
            "enabled": {"type": "boolean"},
            "endpoints": {"type": "array", "items": _OBJ, "maxItems": 1000, "description": "endpoints as in the YAML config"},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["title", "description"],
            "properties": {
                "title": {"type": "string"},
                "description": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Endpoint": {"type": "object", "required": list(endpoint_props), "properties": endpoint_props},
        "EndpointDetail": {
            "type": "object",
            "required": [*endpoint_props, "readings"],
            "properties": {**endpoint_props, "readings": {"type": "array", "items": _ref("Reading")}},
        },
        "Site": {
            "type": "object",
            "required": ["name", "enabled", "endpoints"],
            "properties": {
                "name": {"type": "string"},
                "enabled": {"type": "boolean"},
                "owner": {"type": "string", "nullable": True, "description": "the instance that runs it"},
                "endpoints": {"type": "array", "items": _ref("Endpoint")},
            },
        },
        "SiteBody": site_body,
        # PUT replaces the whole site: its endpoints too (an empty list, given explicitly, removes them all)
        "SiteReplaceBody": {**site_body, "required": ["name", "endpoints"]},
        "TopicBody": {
            "type": "object",
            "additionalProperties": False,
            "required": ["site", "endpoint", "topic"],
            "properties": {"site": _TEXT, "endpoint": _TEXT, "topic": _TEXT},
        },
        "Reading": {
            "type": "object",
            "required": ["site", "endpoint", "name", "device", "value", "quality", "source_time", "received_at"],
            "properties": {
                "site": {"type": "string"},
                "endpoint": {"type": "string"},
                "name": {"type": "string"},
                "device": {"type": "string", "nullable": True},
                "value": {"nullable": True},
                "quality": {"type": "string"},
                "source_time": _TS,
                "received_at": _TS,
            },
        },
        "Bucket": {
            "type": "object",
            "description": "a rollup bucket (`step` given): numeric readings of one series from `time` for `step` seconds",
            "properties": {
                "site": {"type": "string"},
                "endpoint": {"type": "string"},
                "name": {"type": "string"},
                "device": {"type": "string", "nullable": True},
                "time": _TS,
                "min": {"type": "number"},
                "max": {"type": "number"},
                "avg": {"type": "number"},
                "count": {"type": "integer", "minimum": 1},
                "last": {"type": "number"},
            },
        },
        "Event": {
            "type": "object",
            "required": [*_LOGGED, "level", "event", "message", "generation"],
            "properties": {
                **_LOGGED,
                "level": {"type": "string"},
                "event": {"type": "string"},
                "message": {"type": "string"},
                "generation": {"type": "integer"},
            },
        },
        "ParseError": {
            "type": "object",
            "required": [*_LOGGED, "topic", "parser", "error", "sample"],
            "properties": {
                **_LOGGED,
                "topic": {"type": "string", "nullable": True},
                "parser": {"type": "string"},
                "error": {"type": "string"},
                "sample": {"type": "string", "description": "the payload, at most 5,000 characters"},
            },
        },
        "Alert": {
            "type": "object",
            "required": ["site", "endpoint", "condition", "severity", "message", "triggered_at", "resolved_at", "active"],
            "properties": {
                "site": {"type": "string"},
                "endpoint": {"type": "string"},
                "condition": {"type": "string", "enum": ["down", "stale", "faulty", "offline", "threshold"]},
                "severity": {"type": "string"},
                "message": {"type": "string"},
                "triggered_at": _TS,
                "resolved_at": _TS,
                "active": {"type": "boolean"},
            },
        },
        "Topic": {
            "type": "object",
            "required": ["site", "endpoint", "topic", "is_active"],
            "properties": {
                "site": {"type": "string"},
                "endpoint": {"type": "string"},
                "topic": {"type": "string"},
                "first_seen": _TS,
                "last_seen": _TS,
                "count": {"type": "integer"},
                "is_processable": {"type": "boolean"},
                "is_active": {"type": "boolean"},
            },
        },
        "TreeNode": {
            "type": "object",
            "required": ["path", "kind", "state", "generation", "restarts"],
            "properties": {
                "path": {"type": "string"},
                "kind": {"type": "string"},
                "state": {"type": "string"},
                "generation": {"type": "integer"},
                "restarts": {"type": "integer"},
                "uptime_s": {"type": "number", "nullable": True},
                "last_failure": {**_OBJ, "nullable": True},
                "abandoned": {"type": "integer"},
            },
        },
        "Cluster": {
            "type": "object",
            "required": ["instances", "sites"],
            "properties": {
                "instances": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name", "started_at", "last_seen", "live", "sites"],
                    "properties": {"name": {"type": "string"}, "started_at": _TS, "last_seen": _TS,
                                   "live": {"type": "boolean"},
                                   "sites": {"type": "array", "items": {"type": "string"}}},
                }},
                "sites": {"type": "array", "items": {
                    "type": "object",
                    "required": ["site", "owner", "epoch", "expires_at"],
                    "properties": {"site": {"type": "string"},
                                   "owner": {"type": "string", "nullable": True},
                                   "epoch": {"type": "integer", "nullable": True},
                                   "expires_at": {**_TS, "nullable": True}},
                }},
            },
        },
        "LogLine": {
            "type": "object",
            "required": ["line", "level", "path"],
            "properties": {
                "line": {"type": "string"},
                "level": {"type": "string", "nullable": True},
                "path": {"type": "string", "nullable": True},
            },
        },
        "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    }


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
            "get": _get(
                "discovered topics", _json(_page("Topic"), "topics"), "site", "endpoint", "limit", "cursor"
            )
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
        f"{_API}/cluster": {"get": _get("the instances sharing the database and each site's owner and lease epoch",
                                        _json(_ref("Cluster"), "instances and site owners"))},
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
    from fieldwatch.http.openapi_page import page_paths  # the status page's routes, kept apart

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
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
