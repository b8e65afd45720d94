"""The OpenAPI components: the schema of every object the HTTP API returns or accepts."""

from __future__ import annotations

from typing import Any

from fieldwatch import states
from fieldwatch.http.openapi_parts import _LOGGED, _NAME, _OBJ, _TEXT, _TS, _ref

__all__ = ["schemas"]


def schemas() -> dict[str, Any]:
    """`components.schemas`: every object the routes refer to by `$ref`."""
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
            "endpoints": {
                "type": "array",
                "items": _OBJ,
                "maxItems": 1000,
                "description": "endpoints as in the YAML config",
            },
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
            "required": [
                "site",
                "endpoint",
                "condition",
                "severity",
                "message",
                "triggered_at",
                "resolved_at",
                "active",
            ],
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
                "instances": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "started_at", "last_seen", "live", "sites"],
                        "properties": {
                            "name": {"type": "string"},
                            "started_at": _TS,
                            "last_seen": _TS,
                            "live": {"type": "boolean"},
                            "sites": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "sites": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["site", "owner", "epoch", "expires_at"],
                        "properties": {
                            "site": {"type": "string"},
                            "owner": {"type": "string", "nullable": True},
                            "epoch": {"type": "integer", "nullable": True},
                            "expires_at": {**_TS, "nullable": True},
                        },
                    },
                },
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
