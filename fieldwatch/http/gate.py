"""What a request may do, judged from its request line and headers alone.

One `RouteTable` answers which methods a path really has (a resource's own
responders, not Falcon's default 405 ones), so that a method a route lacks is a
405 before any token check, HEAD is served wherever GET is, and the server can
refuse a body (413, 401, 403) before reading it (`RequestGate`, used by
`fieldwatch.http.guard` while waitress is still parsing headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from fieldwatch.http.auth import MUTATING_METHODS, TokenAuth

__all__ = ["HeadAsGet", "Refusal", "RequestGate", "RouteTable"]


class RouteTable:
    """The methods each path of a Falcon app really serves (HEAD included wherever GET is)."""

    def __init__(self, app: falcon.App[Any, Any] | None = None) -> None:
        #: set once the app exists (its middleware holds this table before)
        self.app = app

    def methods(self, path: str) -> frozenset[str] | None:
        """The methods `path` serves, or None when no route matches it."""
        if self.app is None:
            return None
        # Falcon's router is the one the app routes with; `find` is its documented interface.
        found = self.app._router.find(path.rstrip("/") or "/")
        if found is None:
            return None
        resource, method_map = found[0], found[1]
        # Falcon fills the map with default responders (plain functions) for the
        # methods a resource lacks; the resource's own responders are its bound methods.
        own = {m for m, responder in method_map.items() if getattr(responder, "__self__", None) is resource}
        if "GET" in own:
            own.add("HEAD")
        return frozenset(own)

    def has(self, path: str, method: str) -> bool:
        """The route of `path` has `method` (unknown paths have none)."""
        methods = self.methods(path)
        return methods is not None and method in methods


class HeadAsGet:
    """Falcon middleware: HEAD runs the GET responder; Falcon then sends the headers only.

    A followed stream opened by the GET responder is closed at once, so its slot is
    given back rather than held by a response that sends no body.
    """

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Route HEAD as GET where the route has GET."""
        if req.method == "HEAD" and self._routes.has(req.path, "GET"):
            req.method = "GET"
            req.context.fieldwatch_head = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool) -> None:
        """Restore HEAD (Falcon drops the body for it) and end any stream."""
        if not req.context.get("fieldwatch_head"):
            return
        req.method = "HEAD"
        stream = resp.stream
        if stream is not None:
            resp.stream = None
            close = getattr(stream, "close", None)
            if close is not None:
                close()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer given before the body is read: status code, reason phrase, JSON fields, headers."""

    code: int
    reason: str
    title: str
    description: str
    headers: tuple[tuple[str, str], ...] = ()


class RequestGate:
    """Refuses, from the request line and headers, what the app would refuse after reading the body.

    Only requests whose route and method exist are judged (anything else goes on to
    the app, which answers 404/405 after reading at most `max_body_bytes`), so the
    answer given early is the one the app would give.
    """

    def __init__(self, routes: RouteTable, auth: TokenAuth, max_body_bytes: int) -> None:
        self.routes = routes
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    def judge(self, method: str, path: str, authorization: str | None, content_length: int | None) -> Refusal | None:
        """A refusal for a request whose body has not been read yet, or None to read on."""
        if content_length is not None and content_length > self.max_body_bytes:
            return Refusal(
                413, "Request Entity Too Large", "Body too large",
                f"the request body is over the limit of {self.max_body_bytes} bytes",
            )  # fmt: skip
        if method not in MUTATING_METHODS or not self.routes.has(path, method):
            return None
        try:
            self.auth.check_header(authorization)
        except falcon.HTTPError as err:
            headers = tuple(dict(err.headers or {}).items())
            reason = "Unauthorized" if err.status_code == 401 else "Forbidden"
            return Refusal(err.status_code, reason, str(err.title), str(err.description or err.title), headers)
        return None
