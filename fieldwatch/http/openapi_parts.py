"""The building blocks of the OpenAPI document: shared schemas, parameters and the shapes of operations."""

from __future__ import annotations

from typing import Any

from fieldwatch.http.params import DEFAULT_LIMIT, LEVELS, MAX_LIMIT

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
_SINCE = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": "^[0-9]{1,10}(\\.[0-9]{1,6})?$"}]
}


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
    "max_s": _query(
        "max_s",
        {"type": "number", "minimum": 0, "maximum": 7 * 24 * 3600},
        "end a followed stream after this many seconds (at most 7 days)",
    ),
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
