"""The OpenAPI paths of the status page (`/`) and of the snapshot it polls (`/api/v1/overview`)."""

from __future__ import annotations

from typing import Any

from fieldwatch.http.openapi_parts import _API, _BAD, _OBJ, _json, _query, _ref

__all__ = ["page_paths"]


def page_paths() -> dict[str, Any]:
    """The status page (`/`) and the snapshot its script polls."""
    text = {"type": "string"}
    page_params = [_query(name, text, what) for name, what in (
        ("q", "text filter"), ("state", "state filter"), ("site", "site filter"), ("page", "page of rows"),
        ("kiosk", "1: the wall-screen layout"))]  # fmt: skip
    overview = {
        "type": "object",
        "required": ["ready", "counts", "sites", "columns", "endpoints", "alerts", "events", "warnings"],
        "properties": {
            "ready": {"type": "boolean"},
            "ready_reason": {"type": "string", "nullable": True},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "sites": {"type": "array", "items": _OBJ},
            "columns": {"type": "array", "items": text, "description": "the order of each endpoint row"},
            "endpoints": {"type": "array", "items": {"type": "array", "items": {}}},
            "alerts": {"type": "array", "items": _ref("Alert")},
            "events": {"type": "array", "items": _ref("Event")},
            "storage_error": {"type": "string", "nullable": True},
            "warnings": {"type": "array", "items": _ref("LogLine")},
        },
    }
    not_modified = {"304": {"description": "unchanged since the ETag in If-None-Match"}}
    return {
        "/": {
            "get": {
                "summary": "the operator's status page (HTML; its script and style are under /static/)",
                "parameters": page_params,
                "responses": {
                    "200": {"description": "the page", "content": {"text/html": {"schema": text}}},
                    "400": _BAD,
                },
            }
        },
        f"{_API}/overview": {
            "get": {
                "summary": "the status page's snapshot: counts, sites, endpoint rows, alerts, events, warnings",
                "parameters": [],
                "responses": {"200": _json(overview, "the snapshot (times in Unix seconds)"), **not_modified},
            }
        },
    }
