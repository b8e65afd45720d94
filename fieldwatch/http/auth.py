"""Bearer-token auth for mutating routes: 401 without a token, 403 for a wrong one (or none configured)."""

from __future__ import annotations

import hmac
import logging
import threading
from typing import TYPE_CHECKING, Any

import falcon

__all__ = ["MUTATING_METHODS", "TokenAuth"]

if TYPE_CHECKING:
    from fieldwatch.http.gate import RouteTable

logger = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenAuth:
    """Falcon middleware: every mutating request needs `Authorization: Bearer <token>`.

    The comparison is constant-time; with no token configured every mutating request
    is refused (403) and the log says why, once. The token never appears in a response.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token.encode("utf-8") if token else None
        self._lock = threading.Lock()
        self._warned = False
        #: the app's routes, once built: a method the route lacks is its 405, not a 401
        self.routes: RouteTable | None = None

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        """Check the token before any mutating responder runs (the route's own methods only)."""
        if resource is None or req.method not in MUTATING_METHODS:
            return
        if self.routes is not None and not self.routes.has(req.path, req.method):
            return  # Falcon's default responder answers 405
        self.check(req)

    def check(self, req: falcon.Request) -> None:
        """Raise HTTPUnauthorized / HTTPForbidden unless the request carries the token."""
        self.check_header(req.get_header("Authorization"))

    def check_header(self, header: str | None) -> None:
        """The same check on the raw `Authorization` header (also used before a body is read)."""
        if self._token is None:
            self._warn_no_token()
            raise falcon.HTTPForbidden(
                title="Mutating routes disabled",
                description="no http.token is configured on the daemon, so every mutating route is refused",
            )
        if not header:
            raise falcon.HTTPUnauthorized(
                title="Authentication required",
                description="this route changes state: send 'Authorization: Bearer <token>'",
                challenges=['Bearer realm="fieldwatch"'],
            )
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise falcon.HTTPUnauthorized(
                title="Authentication required",
                description="expected 'Authorization: Bearer <token>'",
                challenges=['Bearer realm="fieldwatch"'],
            )
        if not hmac.compare_digest(credentials.strip().encode("utf-8"), self._token):
            raise falcon.HTTPForbidden(title="Forbidden", description="the token is not valid")

    def _warn_no_token(self) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        logger.warning(
            "mutating API request refused: no http.token configured (set http.token in the config "
            "to enable enable/disable/restart and site changes)"
        )
