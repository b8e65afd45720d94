"""The read side for the HTTP API and the CLI: plain dicts in the SPEC §6 shapes.

HTTP threads call these directly; peewee gives each thread its own connection, so
reads never wait for the writer (SQLite WAL, PostgreSQL MVCC). Collections return a
`Page` (items newest first, next cursor). A database failure is a StorageError (the
thread's connection is dropped so the next call reconnects); a bad cursor, limit or
level is a ValueError.
"""

from __future__ import annotations

from typing import Any

import peewee

from fieldwatch.storage.models import Alert, Device, Endpoint, Event, ParseError, Site, Topic
from fieldwatch.storage.paging import (
    MAX_LIMIT,
    Page,
    check_limit,
    endpoint_ids,
    endpoint_names,
    keyset_page,
    read_errors,
    rfc,
    tuples,
)
from fieldwatch.storage.readings import latest_readings, readings

__all__ = [
    "LEVELS",
    "MAX_LIMIT",
    "Page",
    "events",
    "alerts",
    "readings",
    "latest_readings",
    "topics",
    "devices",
    "parse_errors",
    "active_alert_counts",
]

#: Event levels, least severe first; `level=` keeps that level and the more severe ones.
LEVELS = ("debug", "info", "warning", "error", "critical")


def events(
    *,
    site: str | None = None,
    endpoint: str | None = None,
    level: str | None = None,
    since: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
    after_id: int | None = None,
) -> Page:
    """The connection event log, newest first; `after_id`: only newer events, oldest first."""
    check_limit(limit)
    fields = (
        Event.time,
        Event.id,
        Event.site_name,
        Event.endpoint_name,
        Event.level,
        Event.event,
        Event.message,
        Event.exc_type,
        Event.attempt,
        Event.generation,
    )
    query = Event.select(*fields)
    if site is not None:
        query = query.where(Event.site_name == site)
    if endpoint is not None:
        query = query.where(Event.endpoint_name == endpoint)
    if level is not None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        query = query.where(Event.level.in_(LEVELS[LEVELS.index(level) :]))
    if since is not None:
        query = query.where(Event.time >= since)
    rows: list[Any]
    nxt: str | None
    with read_errors():
        if after_id is not None:
            query = query.where(Event.id > after_id).order_by(Event.id).limit(limit)
            rows, nxt = tuples(query), None
        else:
            rows, nxt = keyset_page(query, "events", Event.time, Event.id, limit, cursor)
    items = [
        {
            "id": r[1],
            "time": rfc(r[0]),
            "site": r[2],
            "endpoint": r[3],
            "level": r[4],
            "event": r[5],
            "message": r[6],
            "exc_type": r[7],
            "attempt": r[8],
            "generation": r[9],
        }
        for r in rows
    ]
    return items, nxt


def alerts(
    *,
    active: bool | None = None,
    site: str | None = None,
    endpoint: str | None = None,
    condition: str | None = None,
    since: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Alerts newest first (by triggered_at); `active` True/False: open/resolved only."""
    check_limit(limit)
    fields = (
        Alert.triggered_at,
        Alert.id,
        Alert.endpoint,
        Alert.condition,
        Alert.subject,
        Alert.severity,
        Alert.message,
        Alert.resolved_at,
    )
    query = Alert.select(*fields)
    with read_errors():
        ids = endpoint_ids(site, endpoint)
        if ids is not None:
            if not ids:
                return [], None
            query = query.where(Alert.endpoint.in_(ids))
        if active is True:
            query = query.where(Alert.resolved_at.is_null())
        elif active is False:
            query = query.where(Alert.resolved_at.is_null(False))
        if condition is not None:
            query = query.where(Alert.condition == condition)
        if since is not None:
            query = query.where(Alert.triggered_at >= since)
        rows, nxt = keyset_page(query, "alerts", Alert.triggered_at, Alert.id, limit, cursor)
        names = endpoint_names({r[2] for r in rows})
    items = []
    for r in rows:
        site_name, endpoint_name = names.get(r[2], (None, None))
        items.append(
            {
                "id": r[1],
                "site": site_name,
                "endpoint": endpoint_name,
                "condition": r[3],
                "subject": r[4],
                "severity": r[5],
                "message": r[6],
                "triggered_at": rfc(r[0]),
                "resolved_at": rfc(r[7]),
                "active": r[7] is None,
            }
        )
    return items, nxt


def topics(
    *, site: str | None = None, endpoint: str | None = None, limit: int = 100, cursor: str | None = None
) -> Page:
    """Discovered topics, most recently seen first."""
    check_limit(limit)
    fields = (
        Topic.last_seen,
        Topic.id,
        Topic.endpoint,
        Topic.topic,
        Topic.first_seen,
        Topic.count,
        Topic.is_processable,
        Topic.is_active,
    )
    query = Topic.select(*fields)
    with read_errors():
        ids = endpoint_ids(site, endpoint)
        if ids is not None:
            if not ids:
                return [], None
            query = query.where(Topic.endpoint.in_(ids))
        rows, nxt = keyset_page(query, "topics", Topic.last_seen, Topic.id, limit, cursor)
        names = endpoint_names({r[2] for r in rows})
    items = []
    for last_seen, tid, eid, topic, first_seen, count, processable, active in rows:
        site_name, endpoint_name = names.get(eid, (None, None))
        items.append(
            {
                "id": tid,
                "site": site_name,
                "endpoint": endpoint_name,
                "topic": topic,
                "first_seen": rfc(first_seen),
                "last_seen": rfc(last_seen),
                "count": count,
                "is_processable": bool(processable),
                "is_active": bool(active),
            }
        )
    return items, nxt


def devices(endpoint_id: int) -> list[dict[str, Any]]:
    """The devices of an endpoint with last_seen and their online flag, by name."""
    with read_errors():
        rows = tuples(
            Device.select(Device.name, Device.first_seen, Device.last_seen, Device.online)
            .where(Device.endpoint == endpoint_id)
            .order_by(Device.name)
        )
    return [
        {"name": name, "first_seen": rfc(first), "last_seen": rfc(last), "online": bool(online)}
        for name, first, last, online in rows
    ]


def parse_errors(
    *,
    site: str | None = None,
    endpoint: str | None = None,
    since: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Payloads parsers rejected, newest first, with their (truncated) samples."""
    check_limit(limit)
    fields = (
        ParseError.time,
        ParseError.id,
        ParseError.endpoint,
        ParseError.topic,
        ParseError.parser,
        ParseError.error,
        ParseError.sample,
    )
    query = ParseError.select(*fields)
    with read_errors():
        ids = endpoint_ids(site, endpoint)
        if ids is not None:
            if not ids:
                return [], None
            query = query.where(ParseError.endpoint.in_(ids))
        if since is not None:
            query = query.where(ParseError.time >= since)
        rows, nxt = keyset_page(query, "parse_errors", ParseError.time, ParseError.id, limit, cursor)
        names = endpoint_names({r[2] for r in rows})
    items = []
    for time_, pid, eid, topic, parser, error, sample in rows:
        site_name, endpoint_name = names.get(eid, (None, None))
        items.append(
            {
                "id": pid,
                "time": rfc(time_),
                "site": site_name,
                "endpoint": endpoint_name,
                "topic": topic,
                "parser": parser,
                "error": error,
                "sample": sample,
            }
        )
    return items, nxt


def active_alert_counts() -> dict[tuple[str, str, str], int]:
    """(site, endpoint, condition) -> number of active alerts (for the alerts gauge)."""
    with read_errors():
        query = (
            Alert.select(Site.name, Endpoint.name, Alert.condition, peewee.fn.COUNT(Alert.id))
            .join(Endpoint)
            .join(Site)
            .where(Alert.resolved_at.is_null())
            .group_by(Site.name, Endpoint.name, Alert.condition)
        )
        return {(s, e, c): int(n) for s, e, c, n in tuples(query)}
