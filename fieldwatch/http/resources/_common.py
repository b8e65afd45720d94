"""Shared pieces of the resources: bounded JSON bodies, field checks, collection pages."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import falcon

from fieldwatch.http.errors import InvalidInput
from fieldwatch.textcheck import json_problems

if TYPE_CHECKING:
    from fieldwatch.http.app import AppDeps

__all__ = ["BodyLimit", "Resource", "check_fields", "page", "read_json_object"]


class Resource:
    """Base of every resource: holds the injected collaborators."""

    def __init__(self, deps: AppDeps) -> None:
        self.deps = deps


class BodyLimit:
    """Falcon middleware: 413 for a declared Content-Length over the limit, before routing."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse an oversized body before anything reads it."""
        length = req.content_length
        if length is not None and length > self.max_bytes:
            raise _too_large(self.max_bytes)


def _too_large(max_bytes: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(
        title="Body too large", description=f"the request body is over the limit of {max_bytes} bytes"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json_object(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object: 413 over `max_bytes` (chunked bodies too), 400 when not an object
    or when a string (or key) in it is too long or cannot be stored (a lone surrogate, a NUL)."""
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    if not raw.strip():
        raise falcon.HTTPBadRequest(title="Body required", description="send a JSON object")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise falcon.HTTPBadRequest(title="Invalid JSON", description=f"the body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise falcon.HTTPBadRequest(title="Invalid body", description="the body must be a JSON object")
    problems = json_problems(body)
    if problems:
        raise InvalidInput("Invalid body", problems)
    return body


_TYPE_NAMES = {str: "a string", bool: "true or false", list: "a list", dict: "an object"}


def check_fields(body: dict[str, Any], fields: dict[str, type], required: tuple[str, ...] = ()) -> None:
    """400 listing every unknown field, missing required field and wrongly typed value."""
    problems = [f"unknown field {key[:64]!r}" for key in body if key not in fields]
    problems += [f"missing field {key!r}" for key in required if key not in body]
    for key, kind in fields.items():
        if key in body and not isinstance(body[key], kind):
            problems.append(f"field {key!r} must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    if problems:
        raise InvalidInput("Invalid body", problems)


def page(items: list[dict[str, Any]], next_cursor: str | None = None) -> dict[str, Any]:
    """A collection body: `{"items": [...], "next": cursor-or-null}`."""
    return {"items": items, "next": next_cursor}
