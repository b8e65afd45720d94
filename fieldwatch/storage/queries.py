"""The read side for the HTTP API and the CLI: plain dicts in the SPEC §6 shapes.

HTTP threads call these directly; peewee gives each thread its own connection, so
reads never wait for the writer (SQLite WAL, PostgreSQL MVCC). Collections return a
`Page` (items newest first, next cursor). A database failure is a StorageError (the
thread's connection is dropped so the next call reconnects); a bad cursor, limit or
level is a ValueError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import peewee

from fieldwatch import states
from fieldwatch.errors import NotFoundError, StorageError
from fieldwatch.storage.db import DATABASE_ERRORS, database_proxy, reset_connection
from fieldwatch.storage.models import Alert, Device, Endpoint, Event, ParseError, Reading, Site, Topic
from fieldwatch.storage.paging import MAX_LIMIT, Page, check_limit, keyset_page, public_config, reading_value, rfc
from fieldwatch.timeutil import now as _now

__all__ = [
    "LEVELS",
    "MAX_LIMIT",
    "Page",
    "effective_state",
    "list_sites",
    "get_site",
    "get_endpoint",
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


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except DATABASE_ERRORS as err:
        db = database_proxy.obj
        if db is not None:
            reset_connection(db)
        raise StorageError(f"storage read failed: {err}") from err


def _tuples(query: Any) -> list[tuple[Any, ...]]:
    """Rows of a peewee query as plain tuples (no model instances: fast, and typed loosely)."""
    return list(query.tuples())


def _stale_after_s(kind: str, config: dict[str, Any]) -> float | None:
    value = config.get("stale_after_s")
    if value:
        return float(value)
    if kind == "icmp":  # the probe's own detection bound
        return (
            float(config.get("interval_s", 10)) * int(config.get("down_after", 2))
            + float(config.get("timeout_s", 1))
            + 1.0
        )
    return None


def effective_state(state: str, kind: str, last_data_at: float | None, config: dict[str, Any], now: float) -> str:
    """The state a reader may show: `up` only with data fresher than stale_after_s."""
    if state != states.UP:
        return state
    bound = _stale_after_s(kind, config)
    if bound is not None and (last_data_at is None or now - last_data_at > bound):
        return states.STALE
    return state


def _endpoint_dict(row: Endpoint, site_name: str, now: float) -> dict[str, Any]:
    config = public_config(row.config)
    state = effective_state(row.state, row.kind, row.last_data_at, config, now)
    return {
        "id": row.id,
        "site": site_name,
        "name": row.name,
        "kind": row.kind,
        "enabled": bool(row.enabled),
        "state": state,
        "since": rfc(row.since),
        "reason": row.reason if state == row.state else f"no data since {rfc(row.last_data_at)}",
        "down_since": rfc(row.down_since),
        "last_data_at": rfc(row.last_data_at),
        "generation": row.generation,
        "restarts": row.restarts,
        "reconnects": row.reconnects,
        "config": config,
    }


def _sites(where: Any = None) -> list[dict[str, Any]]:
    now = _now()
    query = Site.select().order_by(Site.name)
    if where is not None:
        query = query.where(where)
    sites = list(query)
    endpoints: dict[int, list[dict[str, Any]]] = {site.id: [] for site in sites}
    names = {site.id: site.name for site in sites}
    if sites:
        for row in Endpoint.select().where(Endpoint.site.in_(list(endpoints))).order_by(Endpoint.name):
            endpoints[row.site_id].append(_endpoint_dict(row, names[row.site_id], now))
    return [
        {"name": site.name, "enabled": bool(site.enabled), "origin": site.origin, "endpoints": endpoints[site.id]}
        for site in sites
    ]


def list_sites() -> list[dict[str, Any]]:
    """Every site with its endpoints and their (freshness-checked) states, by name."""
    with _reading():
        return _sites()


def get_site(name: str) -> dict[str, Any]:
    """One site; NotFoundError if it does not exist."""
    with _reading():
        found = _sites(Site.name == name)
    if not found:
        raise NotFoundError(f"site {name!r} does not exist")
    return found[0]


def get_endpoint(site: str, name: str) -> dict[str, Any]:
    """One endpoint with its latest readings (one per name) under `readings`."""
    with _reading():
        row = Endpoint.select().join(Site).where((Site.name == site) & (Endpoint.name == name)).first()
        if row is None:
            raise NotFoundError(f"endpoint {site}/{name} does not exist")
        result = _endpoint_dict(row, site, _now())
    result["readings"] = latest_readings(row.id)
    return result


def _endpoint_ids(site: str | None, endpoint: str | None) -> list[int] | None:
    """Ids matching the site/endpoint filters (None: no filter)."""
    if site is None and endpoint is None:
        return None
    query = Endpoint.select(Endpoint.id).join(Site)
    if site is not None:
        query = query.where(Site.name == site)
    if endpoint is not None:
        query = query.where(Endpoint.name == endpoint)
    return [row[0] for row in _tuples(query)]


def _names(ids: set[int]) -> dict[int, tuple[str, str]]:
    if not ids:
        return {}
    query = Endpoint.select(Endpoint.id, Site.name, Endpoint.name).join(Site).where(Endpoint.id.in_(list(ids)))
    return {eid: (site_name, name) for eid, site_name, name in _tuples(query)}


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
    fields = (Event.time, Event.id, Event.site_name, Event.endpoint_name, Event.level, Event.event,
              Event.message, Event.exc_type, Event.attempt, Event.generation)  # fmt: skip
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
    with _reading():
        if after_id is not None:
            query = query.where(Event.id > after_id).order_by(Event.id).limit(limit)
            rows, nxt = _tuples(query), None
        else:
            rows, nxt = keyset_page(query, "events", Event.time, Event.id, limit, cursor)
    items = [
        {"id": r[1], "time": rfc(r[0]), "site": r[2], "endpoint": r[3], "level": r[4], "event": r[5],
         "message": r[6], "exc_type": r[7], "attempt": r[8], "generation": r[9]}
        for r in rows
    ]  # fmt: skip
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
    fields = (Alert.triggered_at, Alert.id, Alert.endpoint, Alert.condition, Alert.subject, Alert.severity,
              Alert.message, Alert.resolved_at)  # fmt: skip
    query = Alert.select(*fields)
    with _reading():
        ids = _endpoint_ids(site, endpoint)
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
        names = _names({r[2] for r in rows})
    items = []
    for r in rows:
        site_name, endpoint_name = names.get(r[2], (None, None))
        items.append(
            {"id": r[1], "site": site_name, "endpoint": endpoint_name, "condition": r[3], "subject": r[4],
             "severity": r[5], "message": r[6], "triggered_at": rfc(r[0]), "resolved_at": rfc(r[7]),
             "active": r[7] is None}
        )  # fmt: skip
    return items, nxt


def _reading_items(rows: list[Any], names: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    items = []
    for received_at, rid, eid, name, device, value_num, value_text, quality, source_time in rows:
        site_name, endpoint_name = names.get(eid, (None, None))
        items.append(
            {"id": rid, "site": site_name, "endpoint": endpoint_name, "name": name, "device": device,
             "value": reading_value(value_num, value_text), "quality": quality,
             "source_time": rfc(source_time), "received_at": rfc(received_at)}
        )  # fmt: skip
    return items


_READING_FIELDS = (Reading.received_at, Reading.id, Reading.endpoint, Reading.name, Reading.device,
                   Reading.value_num, Reading.value_text, Reading.quality, Reading.source_time)  # fmt: skip


def readings(
    *,
    site: str | None = None,
    endpoint: str | None = None,
    name: str | None = None,
    device: str | None = None,
    since: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Stored readings newest first (by received_at)."""
    check_limit(limit)
    query = Reading.select(*_READING_FIELDS)
    with _reading():
        ids = _endpoint_ids(site, endpoint)
        if ids is not None:
            if not ids:
                return [], None
            query = query.where(Reading.endpoint.in_(ids))
        if name is not None:
            query = query.where(Reading.name == name)
        if device is not None:
            query = query.where(Reading.device == device)
        if since is not None:
            query = query.where(Reading.received_at >= since)
        rows, nxt = keyset_page(query, "readings", Reading.received_at, Reading.id, limit, cursor)
        names = _names({r[2] for r in rows})
    return _reading_items(rows, names), nxt


def latest_readings(endpoint_id: int, per_name: int = 1) -> list[dict[str, Any]]:
    """The newest `per_name` readings of each reading name of an endpoint, by name."""
    p = "?" if isinstance(database_proxy.obj, peewee.SqliteDatabase) else "%s"
    # A loose index scan: jump from name to name on (endpoint_id, name, received_at).
    distinct_names = (
        "WITH RECURSIVE names(n) AS ("
        f" SELECT (SELECT MIN(name) FROM reading WHERE endpoint_id = {p})"
        f" UNION ALL SELECT (SELECT MIN(name) FROM reading WHERE endpoint_id = {p} AND name > n)"
        " FROM names WHERE n IS NOT NULL)"
        " SELECT n FROM names WHERE n IS NOT NULL"
    )
    rows: list[Any] = []
    with _reading():
        found = [r[0] for r in database_proxy.execute_sql(distinct_names, (endpoint_id, endpoint_id)).fetchall()]
        for reading_name in found:
            query = (
                Reading.select(*_READING_FIELDS)
                .where((Reading.endpoint == endpoint_id) & (Reading.name == reading_name))
                .order_by(Reading.received_at.desc(), Reading.id.desc())
                .limit(per_name)
            )
            rows.extend(_tuples(query))
        names = _names({endpoint_id}) if rows else {}
    return _reading_items(rows, names)


def topics(
    *, site: str | None = None, endpoint: str | None = None, limit: int = 100, cursor: str | None = None
) -> Page:
    """Discovered MQTT topics, most recently seen first."""
    check_limit(limit)
    fields = (Topic.last_seen, Topic.id, Topic.endpoint, Topic.topic, Topic.first_seen, Topic.count,
              Topic.is_processable, Topic.is_active)  # fmt: skip
    query = Topic.select(*fields)
    with _reading():
        ids = _endpoint_ids(site, endpoint)
        if ids is not None:
            if not ids:
                return [], None
            query = query.where(Topic.endpoint.in_(ids))
        rows, nxt = keyset_page(query, "topics", Topic.last_seen, Topic.id, limit, cursor)
        names = _names({r[2] for r in rows})
    items = []
    for last_seen, tid, eid, topic, first_seen, count, processable, active in rows:
        site_name, endpoint_name = names.get(eid, (None, None))
        items.append(
            {"id": tid, "site": site_name, "endpoint": endpoint_name, "topic": topic,
             "first_seen": rfc(first_seen), "last_seen": rfc(last_seen), "count": count,
             "is_processable": bool(processable), "is_active": bool(active)}
        )  # fmt: skip
    return items, nxt


def devices(endpoint_id: int) -> list[dict[str, Any]]:
    """The MQTT devices of an endpoint with last_seen and their online flag, by name."""
    with _reading():
        rows = _tuples(
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
    fields = (ParseError.time, ParseError.id, ParseError.endpoint, ParseError.topic, ParseError.parser,
              ParseError.error, ParseError.sample)  # fmt: skip
    query = ParseError.select(*fields)
    with _reading():
        ids = _endpoint_ids(site, endpoint)
        if ids is not None:
            if not ids:
                return [], None
            query = query.where(ParseError.endpoint.in_(ids))
        if since is not None:
            query = query.where(ParseError.time >= since)
        rows, nxt = keyset_page(query, "parse_errors", ParseError.time, ParseError.id, limit, cursor)
        names = _names({r[2] for r in rows})
    items = []
    for time_, pid, eid, topic, parser, error, sample in rows:
        site_name, endpoint_name = names.get(eid, (None, None))
        items.append(
            {"id": pid, "time": rfc(time_), "site": site_name, "endpoint": endpoint_name, "topic": topic,
             "parser": parser, "error": error, "sample": sample}
        )  # fmt: skip
    return items, nxt


def active_alert_counts() -> dict[tuple[str, str, str], int]:
    """(site, endpoint, condition) -> number of active alerts (for the alerts gauge)."""
    with _reading():
        query = (
            Alert.select(Site.name, Endpoint.name, Alert.condition, peewee.fn.COUNT(Alert.id))
            .join(Endpoint)
            .join(Site)
            .where(Alert.resolved_at.is_null())
            .group_by(Site.name, Endpoint.name, Alert.condition)
        )
        return {(s, e, c): int(n) for s, e, c, n in _tuples(query)}
