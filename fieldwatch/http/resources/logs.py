"""`GET /api/v1/logs?lines=&follow=&level=&site=`: the daemon log, tailed and optionally followed."""

from __future__ import annotations

import logging

import falcon

from fieldwatch.http import params
from fieldwatch.http.logtail import LogFilter, LogFollower, ndjson_stream, tail
from fieldwatch.http.resources._common import Resource, page
from fieldwatch.http.resources.collections import follow_params
from fieldwatch.logring import LogRing

__all__ = ["LogResource"]

logger = logging.getLogger(__name__)

DEFAULT_LINES = 200


class LogResource(Resource):
    """The last `lines` matching lines (oldest first, as `tail` prints them).

    From `logging.file` when one is set, else from the in-memory ring of recent lines.

    Each item is `{"line", "level", "path"}`. With `follow=1` the answer is NDJSON: those
    lines, then every new matching line, across a rotation of the file.
    """

    PARAMS = ("lines", "follow", "level", "site", "max_s")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Tail, or tail and follow."""
        params.check_known(req, self.PARAMS)
        lines = params.integer(req, "lines", DEFAULT_LINES, minimum=0, maximum=params.MAX_LIMIT)
        filt = LogFilter(params.level(req), params.text(req, "site"))
        follow, max_s = follow_params(req)
        path = self.deps.log_file
        ring = self.deps.log_ring
        if path is None and ring is None:
            raise falcon.HTTPNotFound(title="No log", description="the daemon logs to no file and keeps no lines")
        if follow and not self.deps.streams.acquire(self.deps.max_streams):
            raise falcon.HTTPServiceUnavailable(
                title="Too many follow streams",
                description=f"{self.deps.max_streams} streams are open already; try again later",
                retry_after=5,
            )
        if path is None:
            assert ring is not None
            self._from_ring(resp, ring, lines, filt, follow, max_s)
            return
        try:
            items, position = tail(path, lines, filt)
        except OSError as err:
            if follow:
                self.deps.streams.release()
            raise falcon.HTTPServiceUnavailable(title="Log unreadable", description=err.strerror or str(err)) from None
        if not follow:
            resp.media = page(items)
            return
        follower = LogFollower(path, position)

        def poll() -> list[dict[str, object]]:
            try:
                found = follower.read_lines()
            except OSError as err:  # unreadable for now (permissions, a rotation race): retry next poll
                logger.debug("following %s: %s", path, err)
                return []
            return [item for raw in found if (item := filt.line(raw)) is not None]

        resp.content_type = "application/x-ndjson"
        resp.stream = ndjson_stream(
            items,
            poll,
            stats=self.deps.streams,
            heartbeat_s=self.deps.heartbeat_s,
            max_s=max_s,
            on_close=follower.close,
        )

    def _from_ring(
        self, resp: falcon.Response, ring: LogRing, lines: int, filt: LogFilter, follow: bool, max_s: float | None
    ) -> None:
        """No log file (journal, console): the same answer from the in-memory ring of recent lines."""
        found, last = ring.lines()
        items = [item for raw in found if (item := filt.line(raw)) is not None]
        items = items[-lines:] if lines else []
        if not follow:
            resp.media = page(items)
            return

        def poll() -> list[dict[str, object]]:
            nonlocal last
            new, last = ring.lines(after=last)
            return [item for raw in new if (item := filt.line(raw)) is not None]

        resp.content_type = "application/x-ndjson"
        resp.stream = ndjson_stream(
            items, poll, stats=self.deps.streams, heartbeat_s=self.deps.heartbeat_s, max_s=max_s
        )
