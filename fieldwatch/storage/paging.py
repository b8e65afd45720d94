"""Keyset pagination and the row helpers shared by the read queries.

A cursor is an opaque URL-safe string naming the last row of a page (its sort key and
id) and the collection it belongs to; a cursor that does not decode is a ValueError,
which the HTTP layer turns into a 400.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import peewee

from fieldwatch.errors import StorageError
from fieldwatch.storage.db import DATABASE_ERRORS, database_proxy, reset_connection
from fieldwatch.storage.models import Endpoint, Site
from fieldwatch.timeutil import to_rfc3339

__all__ = [
    "MAX_LIMIT",
    "Page",
    "check_limit",
    "encode_cursor",
    "decode_cursor",
    "keyset_page",
    "reading_value",
    "read_errors",
    "tuples",
    "endpoint_ids",
    "endpoint_names",
    "rfc",
]

MAX_LIMIT = 10_000

Page = tuple[list[dict[str, Any]], "str | None"]
"""Items newest first, and the cursor of the next page (None on the last one)."""


def check_limit(limit: int) -> int:
    """`limit` within 1..MAX_LIMIT, else ValueError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


_INT64 = 2**63


def encode_cursor(kind: str, key: float, row_id: int) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = json.dumps([kind, key, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[float, int]:
    """The (sort key, id) a cursor of collection `kind` names; ValueError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, key, row_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as err:
        raise ValueError(f"not a valid cursor: {cursor[:64]!r}") from err
    if tag != kind or not isinstance(key, (int, float)) or not isinstance(row_id, int) or isinstance(row_id, bool):
        raise ValueError(f"not a {kind} cursor: {cursor[:64]!r}")
    # Ids and keys go into SQL as 64-bit integers and finite floats: anything else is not ours.
    if not -_INT64 <= row_id < _INT64 or not math.isfinite(float(key)) or abs(float(key)) >= 2.0**63:
        raise ValueError(f"not a {kind} cursor (out of range): {cursor[:64]!r}")
    return float(key), row_id


def keyset_page(
    query: peewee.Select,
    kind: str,
    key_field: peewee.Field,
    id_field: peewee.Field,
    limit: int,
    cursor: str | None,
) -> tuple[list[Sequence[Any]], str | None]:
    """Rows of `query` newest first (key, id descending) after `cursor`, and the next cursor.

    The query must select the key first and the id second.
    """
    check_limit(limit)
    if cursor:
        key, row_id = decode_cursor(kind, cursor)
        query = query.where((key_field < key) | ((key_field == key) & (id_field < row_id)))
    ordered: Any = query.order_by(key_field.desc(), id_field.desc()).limit(limit + 1)
    rows: list[Sequence[Any]] = list(ordered.tuples())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(kind, rows[-1][0], rows[-1][1])


def reading_value(value_num: float | None, value_text: str | None) -> Any:
    """A reading's value: the number when numeric, else decoded JSON, else the text.

    NaN and infinities (not representable in JSON) come back as the strings "nan", "inf".
    """
    if value_num is not None:
        return value_num if math.isfinite(value_num) else str(value_num)
    if value_text is None:
        return None
    stripped = value_text.lstrip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return json.loads(value_text)
        except ValueError:
            pass
    return value_text


def rfc(ts: float | None) -> str | None:
    """Unix seconds to RFC 3339 (None stays None)."""
    return to_rfc3339(ts)


@contextlib.contextmanager
def read_errors() -> Iterator[None]:
    """Turn a database failure into StorageError, dropping this thread's connection."""
    try:
        yield
    except DATABASE_ERRORS as err:
        db = database_proxy.obj
        if db is not None:
            reset_connection(db)
        raise StorageError(f"storage read failed: {err}") from err


def tuples(query: Any) -> list[tuple[Any, ...]]:
    """Rows of a peewee query as plain tuples (no model instances: fast, and typed loosely)."""
    return list(query.tuples())


def endpoint_ids(site: str | None, endpoint: str | None) -> list[int] | None:
    """Ids matching the site/endpoint filters (None: no filter)."""
    if site is None and endpoint is None:
        return None
    query = Endpoint.select(Endpoint.id).join(Site)
    if site is not None:
        query = query.where(Site.name == site)
    if endpoint is not None:
        query = query.where(Endpoint.name == endpoint)
    return [row[0] for row in tuples(query)]


def endpoint_names(ids: set[int]) -> dict[int, tuple[str, str]]:
    """endpoint id -> (site name, endpoint name) for the ids given."""
    if not ids:
        return {}
    query = Endpoint.select(Endpoint.id, Site.name, Endpoint.name).join(Site).where(Endpoint.id.in_(list(ids)))
    return {eid: (site_name, name) for eid, site_name, name in tuples(query)}
