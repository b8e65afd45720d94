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


class AlertCollection(Resource):
    """`GET /api/v1/alerts?active=&site=&endpoint=&since=&limit=&cursor=`: newest first."""

    PARAMS = ("site", "endpoint", "active", "since", "limit", "cursor")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of alerts (`active=true`: only open ones)."""
        params.check_known(req, self.PARAMS)
        items, nxt = _query(
            self.deps.queries.alerts,
            site=params.text(req, "site"),
            endpoint=params.text(req, "endpoint"),
            active=params.boolean(req, "active"),
            since=params.since(req),
            limit=params.limit(req),
            cursor=params.cursor(req),
        )
        resp.media = page(items, nxt)


class ReadingCollection(Resource):
    """`GET /api/v1/readings?site=&endpoint=&name=&device=&since=&until=&step=&limit=&cursor=`: newest first.

    With `step` (seconds, a multiple of 60) the items are rollup buckets (SPEC §6).
    """

    PARAMS = ("site", "endpoint", "name", "device", "since", "until", "step", "limit", "cursor")
    MAX_STEP_S = 366 * 86_400

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of stored readings, or of rollup buckets."""
        params.check_known(req, self.PARAMS)
        since, until = params.since(req), params.since(req, "until")
        step = params.integer(req, "step", 0, minimum=60, maximum=self.MAX_STEP_S) or None
        if step is not None and step % 60:
            raise falcon.HTTPBadRequest(title="Invalid parameter", description="step: must be a multiple of 60 seconds")
        items, nxt = _query(
            self.deps.queries.readings,
            site=params.text(req, "site"),
            endpoint=params.text(req, "endpoint"),
            name=params.text(req, "name"),
            device=params.text(req, "device"),
            since=since,
            until=until,
            step=step,
            limit=params.limit(req),
            cursor=params.cursor(req),
        )
        resp.media = page(items, nxt)


class ParseErrorCollection(Resource):
    """`GET /api/v1/parse-errors?site=&endpoint=&since=&limit=&cursor=`: rejected payloads, newest first."""

    PARAMS = ("site", "endpoint", "since", "limit", "cursor")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of parse errors: topic, parser, error and a payload sample of at most 5,000 characters."""
        params.check_known(req, self.PARAMS)
        items, nxt = _query(
            self.deps.queries.parse_errors,
            site=params.text(req, "site"),
            endpoint=params.text(req, "endpoint"),
            since=params.since(req),
            limit=params.limit(req),
            cursor=params.cursor(req),
        )
        resp.media = page(items, nxt)


class TopicCollection(Resource):
    """`GET /api/v1/topics?site=&endpoint=&limit=&cursor=`: discovered topics."""

    PARAMS = ("site", "endpoint", "limit", "cursor")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of topics: first/last seen, count, is_processable, is_active."""
        params.check_known(req, self.PARAMS)
        items, nxt = _query(
            self.deps.queries.topics,
            site=params.text(req, "site"),
            endpoint=params.text(req, "endpoint"),
            limit=params.limit(req),
            cursor=params.cursor(req),
        )
        resp.media = page(items, nxt)
