"""Read-only collections from storage: events (optionally followed), alerts, readings, topics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import falcon

from fieldwatch.errors import StorageError
from fieldwatch.http import params
from fieldwatch.http.logtail import ndjson_stream
from fieldwatch.http.readside import Page
from fieldwatch.http.resources._common import Resource, page

__all__ = ["AlertCollection", "EventCollection", "ReadingCollection", "TopicCollection", "follow_params"]

logger = logging.getLogger(__name__)

_MAX_FOLLOW_S = 7 * 24 * 3600.0


def _query(call: Callable[..., Page], **kwargs: Any) -> Page:
    """Run a query; a cursor the query side rejects is the client's 400."""
    try:
        return call(**kwargs)
    except ValueError as err:
        raise falcon.HTTPBadRequest(title="Invalid parameter", description=f"cursor: {err}") from None


def follow_params(req: falcon.Request) -> tuple[bool, float | None]:
    """`follow` (boolean) and `max_s` (seconds a followed stream may last; default unbounded)."""
    return bool(params.boolean(req, "follow")), params.number(req, "max_s", minimum=0.0, maximum=_MAX_FOLLOW_S)


class EventCollection(Resource):
    """`GET /api/v1/events?site=&endpoint=&level=&since=&limit=&cursor=&follow=`: newest first.

    With `follow=1` the answer is NDJSON: the last `limit` events oldest first, then every
    new one as it is stored (the query side is polled every 0.25 s with the last id seen).
    """

    PARAMS = ("site", "endpoint", "level", "since", "limit", "cursor", "follow", "max_s")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of events, or a followed stream."""
        params.check_known(req, self.PARAMS)
        site, endpoint, level = params.text(req, "site"), params.text(req, "endpoint"), params.level(req)
        since, limit, cursor = params.since(req), params.limit(req), params.cursor(req)
        follow, max_s = follow_params(req)
        queries = self.deps.queries
        if not follow:
            items, nxt = _query(
                queries.events, site=site, endpoint=endpoint, level=level, since=since, limit=limit, cursor=cursor
            )
            resp.media = page(items, nxt)
            return
        if not self.deps.streams.acquire(self.deps.max_streams):
            raise falcon.HTTPServiceUnavailable(
                title="Too many follow streams",
                description=f"{self.deps.max_streams} streams are open already; try again later",
                retry_after=5,
            )
        try:
            items, _ = _query(
                queries.events, site=site, endpoint=endpoint, level=level, since=since, limit=limit, cursor=cursor
            )
            newest = items or queries.events(limit=1)[0]  # nothing matched yet: start after the newest event
            last_id = max((int(item.get("id", 0)) for item in newest), default=0)
        except BaseException:
            self.deps.streams.release()
            raise
        failing = False

        def poll() -> list[dict[str, Any]]:
            nonlocal last_id, failing
            try:
                found, _ = queries.events(site=site, endpoint=endpoint, level=level, after_id=last_id, limit=1000)
            except StorageError as err:  # keep the stream; the next poll retries
                if not failing:
                    logger.warning("following events: %s", err)
                failing = True
                return []
            failing = False
            found = sorted(found, key=lambda item: int(item.get("id", 0)))
            if found:
                last_id = int(found[-1].get("id", last_id))
            return found

        resp.content_type = "application/x-ndjson"
        resp.stream = ndjson_stream(
            list(reversed(items)), poll, stats=self.deps.streams, heartbeat_s=self.deps.heartbeat_s, max_s=max_s
        )


_ARGUMENTS: dict[str, Callable[[falcon.Request], Any]] = {
    "site": lambda req: params.text(req, "site"),
    "endpoint": lambda req: params.text(req, "endpoint"),
    "name": lambda req: params.text(req, "name"),
    "device": lambda req: params.text(req, "device"),
    "active": lambda req: params.boolean(req, "active"),
    "since": params.since,
    "until": lambda req: params.since(req, "until"),
    "limit": params.limit,
    "cursor": params.cursor,
}
"""Query parameter -> how a collection reads it (each passed to the query under its own name)."""


class _Listing(Resource):
    """A collection answered by one read-side query (`QUERY`), its `PARAMS` passed on by name."""

    PARAMS: tuple[str, ...] = ()
    QUERY = ""

    def arguments(self, req: falcon.Request) -> dict[str, Any]:
        """The query's keyword arguments, read from the request (400 on a bad one)."""
        return {name: _ARGUMENTS[name](req) for name in self.PARAMS}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of the collection, newest first."""
        params.check_known(req, self.PARAMS)
        items, nxt = _query(getattr(self.deps.queries, self.QUERY), **self.arguments(req))
        resp.media = page(items, nxt)


class AlertCollection(_Listing):
    """`GET /api/v1/alerts?active=&site=&endpoint=&since=&limit=&cursor=`: newest first (`active=true`: open ones)."""

    PARAMS = ("site", "endpoint", "active", "since", "limit", "cursor")
    QUERY = "alerts"


class ReadingCollection(_Listing):
    """`GET /api/v1/readings?site=&endpoint=&name=&device=&since=&until=&step=&limit=&cursor=`: newest first.

    With `step` (seconds, a multiple of 60) the items are rollup buckets (SPEC §6).
    """

    PARAMS = ("site", "endpoint", "name", "device", "since", "until", "step", "limit", "cursor")
    QUERY = "readings"
    MAX_STEP_S = 366 * 86_400

    def arguments(self, req: falcon.Request) -> dict[str, Any]:
        """The readings query's arguments; `step` is checked here."""
        step = params.integer(req, "step", 0, minimum=60, maximum=self.MAX_STEP_S) or None
        if step is not None and step % 60:
            raise falcon.HTTPBadRequest(title="Invalid parameter", description="step: must be a multiple of 60 seconds")
        return {name: _ARGUMENTS[name](req) for name in self.PARAMS if name != "step"} | {"step": step}


class ParseErrorCollection(_Listing):
    """`GET /api/v1/parse-errors?site=&endpoint=&since=&limit=&cursor=`: rejected payloads, newest first.

    Each: topic, parser, error and a payload sample of at most 5,000 characters.
    """

    PARAMS = ("site", "endpoint", "since", "limit", "cursor")
    QUERY = "parse_errors"


class TopicCollection(_Listing):
    """`GET /api/v1/topics?site=&endpoint=&limit=&cursor=`: discovered topics (first/last seen, count,
    is_processable, is_active)."""

    PARAMS = ("site", "endpoint", "limit", "cursor")
    QUERY = "topics"
