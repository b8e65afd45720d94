"""Bad HTTP input for the API (each must be answered with a 4xx) and the injectors' tiny HTTP client."""

from __future__ import annotations

import http.client
import json
import random
from dataclasses import dataclass

from tests.e2e.daemon_proc import TOKEN

__all__ = ["HttpCheck", "bad_requests", "request"]


@dataclass(frozen=True)
class HttpCheck:
    """One bad request and what came back (status 0: no answer, see `error`)."""

    method: str
    path: str
    what: str
    status: int
    error: str = ""

    @property
    def ok(self) -> bool:
        """A 4xx, as the SPEC requires for bad input."""
        return 400 <= self.status < 500


def request(port: int, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
            headers: dict[str, str] | None = None, timeout_s: float = 20.0) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection; (status, body). Raises when there is no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def bad_requests(rng: random.Random) -> list[tuple[str, str, bytes | None, str | None, str]]:
    """(method, path, body, token, what) of bad requests, some with random parts."""
    junk = "".join(rng.choice("abcxyz0189-_.~%") for _ in range(rng.randint(1, 40)))
    huge = json.dumps({"name": "huge", "endpoints": [], "pad": "x" * (2 << 20)}).encode()
    return [
        ("POST", "/api/v1/sites", b"{not json", TOKEN, "invalid JSON"),
        ("POST", "/api/v1/sites", b'{"name": "x", "bogus": 1}', TOKEN, "unknown field"),
        ("POST", "/api/v1/sites", b"[1, 2]", TOKEN, "JSON array body"),
        ("POST", "/api/v1/sites", huge, TOKEN, "2 MB body"),
        ("POST", "/api/v1/sites", json.dumps({"name": "bad", "endpoints": [
            {"name": "e", "kind": "icmp", "host": "127.0.0.1", "interval_s": -1}]}).encode(), TOKEN, "invalid endpoint"),
        ("POST", "/api/v1/sites", json.dumps({"name": "bad2", "endpoints": [
            {"name": "e", "kind": "warp-drive"}]}).encode(), TOKEN, "unknown kind"),
        ("PUT", "/api/v1/sites/net", b'{"name": "other"}', TOKEN, "name differs from path"),
        ("GET", "/api/v1/events?limit=abc", None, None, "limit not a number"),
        ("GET", "/api/v1/events?limit=100001", None, None, "limit too large"),
        ("GET", "/api/v1/readings?since=yesterday-ish", None, None, "bad since"),
        ("GET", "/api/v1/alerts?active=maybe", None, None, "bad boolean"),
        ("GET", f"/api/v1/sites?{junk}=1", None, None, "unknown parameter"),
        ("GET", "/api/v1/readings?cursor=" + junk, None, None, "bad cursor"),
        ("GET", "/api/v1/logs?lines=-5", None, None, "negative lines"),
        ("GET", "/api/v1/events?level=loud", None, None, "bad level"),
        ("POST", "/api/v1/sites/net/disable", None, "wrong-token", "wrong token"),
        ("POST", "/api/v1/sites/net/disable", None, None, "no token"),
        ("DELETE", "/api/v1/sites/plant1", None, "wrong-token", "wrong token on delete"),
        ("GET", f"/api/v1/{junk}", None, None, "random path"),
        ("GET", f"/{junk}/{junk}", None, None, "random path"),
        ("GET", "/api/v1/sites/%ff%fe", None, None, "non-UTF-8 path"),
        ("DELETE", f"/api/v1/sites/nope-{junk}", None, TOKEN, "delete unknown site"),
        ("POST", f"/api/v1/endpoints/net/nope-{junk}/restart", None, TOKEN, "restart unknown endpoint"),
        ("POST", "/api/v1/topics/enable", b"{}", TOKEN, "topic switch without fields"),
        ("PATCH", "/api/v1/sites", b"{}", TOKEN, "method not allowed"),
    ]
