"""The operator's status page (SPEC section 6, `GET /`) and the snapshot it polls.

`GET /` is one hand-written HTML file; its script and style are static files of this
package (`fieldwatch/http/static`), so nothing loads from elsewhere and the page works on
a plant network without internet. The script polls `GET /api/v1/overview` with an ETag.
The overview is built from the ledger (the same lock-protected snapshot the API
and the metrics read: no actor is asked), the lock-free site flags, and a few bounded
storage reads (active alerts, latest events) plus the in-memory log ring (warnings).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import falcon

from fieldwatch import states
from fieldwatch.errors import StorageError
from fieldwatch.http import params
from fieldwatch.http.logtail import LogFilter
from fieldwatch.http.resources._common import Resource
from fieldwatch.kinds import KINDS
from fieldwatch.status import LightStatus, fresh_state
from fieldwatch.timeutil import to_rfc3339

if TYPE_CHECKING:
    from fieldwatch.http.app import AppDeps

__all__ = [
    "BASE_COLUMNS",
    "COLUMNS",
    "CSP",
    "STATIC_DIR",
    "OverviewResource",
    "PageHeaders",
    "PageResource",
    "build_overview",
    "columns",
    "endpoint_row",
    "fact_columns",
]

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CSP = "default-src 'self'"
#: worst first: the page sorts by this rank
RANK = {states.DOWN: 0, states.FAULTY: 1, states.STALE: 2, states.CONNECTING: 3, states.UP: 4, states.DISABLED: 5}
#: one endpoint row of the overview, in this column order (compact for 10,000 endpoints), then `fact_columns()`
BASE_COLUMNS = ("site", "name", "kind", "enabled", "state", "since", "reason", "down_since", "last_data_at")
ALERTS_SHOWN = 50
EVENTS_SHOWN = 15
WARNINGS_SHOWN = 10
_REASON_CHARS = 300


def _seconds(value: float | None) -> float | None:
    return None if value is None else int(value * 1000) / 1000  # milliseconds are enough, and shorter


def fact_columns() -> tuple[str, ...]:
    """The kinds' own page columns (`KIND.page_facts`), in registry order, each once."""
    return tuple(dict.fromkeys(column for kind in KINDS for column in kind.page_facts))


def columns() -> tuple[str, ...]:
    """The overview's column names: the common ones, then the kinds' facts."""
    return BASE_COLUMNS + fact_columns()


COLUMNS = columns()
"""The columns with the kinds registered at import (tests compare against it)."""


def endpoint_row(status: LightStatus, now: float, facts: tuple[str, ...] | None = None) -> list[Any]:
    """One endpoint as a row of `columns()`; the state after the readers' freshness rule.

    A fact column its kind does not fill is null.
    """
    state, reason = fresh_state(status.state, status.reason, status.last_data_at, status.fresh_within_s, now)
    facts = fact_columns() if facts is None else facts
    kind = KINDS.get(status.kind)
    own = kind.page_facts if kind is not None else {}
    return [
        status.site,
        status.name,
        status.kind,
        status.enabled,
        state,
        _seconds(status.since),
        None if reason is None else reason[:_REASON_CHARS],
        _seconds(status.down_since) if state == states.DOWN else None,
        _seconds(status.last_data_at),
        *(own[column](status.extra, state) if column in own else None for column in facts),
    ]


def build_overview(deps: AppDeps, now: float | None = None) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (times are Unix seconds)."""
    now = time.time() if now is None else now
    facts = fact_columns()
    rows = [endpoint_row(status, now, facts) for status in deps.board.light_snapshot()]
    rows.sort(key=lambda row: (row[0], row[1]))
    counts = dict.fromkeys(states.ALL_STATES, 0)
    for row in rows:
        counts[row[4]] = counts.get(row[4], 0) + 1
    flags = deps.controller.site_flags()
    for row in rows:
        flags.setdefault(row[0], True)
    ready, reason = deps.controller.ready()
    body: dict[str, Any] = {
        "ready": ready,
        "ready_reason": reason,
        "counts": counts,
        "sites": [{"name": name, "enabled": enabled} for name, enabled in sorted(flags.items())],
        "columns": [*BASE_COLUMNS, *facts],
        "topic_kinds": [kind.name for kind in KINDS if kind.has_topics],
        "endpoints": rows,
        "alerts": [],
        "events": [],
        "storage_error": None,
        "warnings": _warnings(deps),
    }
    try:
        body["alerts"] = deps.queries.alerts(active=True, limit=ALERTS_SHOWN)[0]
        body["events"] = deps.queries.events(limit=EVENTS_SHOWN)[0]
    except StorageError as err:  # the live states still show; the page says why the lists are empty
        body["storage_error"] = str(err)
    return body


def _warnings(deps: AppDeps) -> list[dict[str, Any]]:
    ring = deps.log_ring
    if ring is None:
        return []
    found, _ = ring.lines()
    filt = LogFilter(level="warning")
    items = [item for raw in found if (item := filt.line(raw)) is not None]
    return items[-WARNINGS_SHOWN:][::-1]


@dataclass(slots=True)
class _Built:
    """One built snapshot: when, its JSON, its ETag, and its gzip form once a client asked for it."""

    at: float
    data: bytes
    etag: str
    gzipped: bytes | None = None


class OverviewResource(Resource):
    """`GET /api/v1/overview`: the page's snapshot; 304 when unchanged (If-None-Match).

    A snapshot is built at most once per `deps.overview_cache_s` whatever the number of
    open pages (each polls every 2 s): at 10,000 endpoints a build is ~0.1 s of CPU.
    With `Accept-Encoding: gzip` it is sent compressed (~10x smaller at 10,000 endpoints:
    a plant link may be slow), with its own ETag (`<hash>-gz`), as strong ETags require.
    """

    def __init__(self, deps: AppDeps) -> None:
        super().__init__(deps)
        self._lock = threading.Lock()
        self._built: _Built | None = None

    def _snapshot(self, gzipped: bool) -> tuple[bytes, str]:
        with self._lock:  # a request arriving during a build waits for it rather than building again
            now = time.monotonic()
            built = self._built
            if built is None or now - built.at >= self.deps.overview_cache_s:
                data = json.dumps(build_overview(self.deps), separators=(",", ":"), default=to_rfc3339).encode()
                built = self._built = _Built(now, data, hashlib.sha1(data, usedforsecurity=False).hexdigest()[:20])
            if not gzipped:
                return built.data, built.etag
            if built.gzipped is None:
                built.gzipped = gzip.compress(built.data, compresslevel=1, mtime=0)
            return built.gzipped, built.etag + "-gz"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The snapshot with a strong ETag over its content."""
        params.check_known(req, ())
        accepts_gzip = "gzip" in (req.get_header("Accept-Encoding") or "").lower()
        data, etag = self._snapshot(accepts_gzip)
        resp.etag = etag
        resp.cache_control = ["no-cache"]
        resp.vary = ["Accept-Encoding"]
        if any(tag == etag or tag == "*" for tag in req.if_none_match or ()):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        if accepts_gzip:
            resp.set_header("Content-Encoding", "gzip")
        resp.data = data


class PageResource:
    """`GET /`: the page (read once at start; its assets are served from /static/)."""

    def __init__(self) -> None:
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as handle:
            self._html = handle.read()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The HTML; the script fetches the data."""
        params.check_known(req, ("q", "state", "site", "page", "kiosk"))
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        resp.data = self._html


class PageHeaders:
    """Middleware: the page and its assets load nothing from elsewhere (CSP), and are not sniffed."""

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        """Set the security headers on `/` and `/static/...`."""
        if req.path == "/" or req.path.startswith("/static/"):
            resp.set_header("Content-Security-Policy", CSP)
            resp.set_header("X-Content-Type-Options", "nosniff")
            resp.set_header("Referrer-Policy", "no-referrer")
