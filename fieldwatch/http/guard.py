"""waitress, hardened against one abusive or careless client.

waitress has a global `connection_limit` (past it, it stops accepting anyone) and
an idle timeout that a client sending one byte now and then never reaches. So:

- connections are counted per client address at accept time: an address at its
  limit has its oldest connection that is not being served closed to make room
  (its own idle or half-sent requests pay, nobody else's), or, when every one of
  them is being served, the new connection is closed;
- a request that has not arrived whole (headers and body) within
  `request_timeout_s` of its first byte is closed, however slowly it trickles;
- a body is refused before it is read when the gate says so (413 over the limit,
  401/403 without the token on a mutating route);
- a 503 (e.g. too many follow streams) closes its connection, so a client that
  keeps the socket does not keep a slot;
- after an error answer the connection is closed gently: our side is shut down and
  what the client still sends is read and dropped (never stored) for a little while, so
  a client busy sending the refused body still reads the answer instead of a reset;
- waitress's own errors (bad request line, headers too large) answer JSON.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import Error

from fieldwatch.http.gate import Refusal, RequestGate

__all__ = ["GuardedServer", "Limits"]

logger = logging.getLogger(__name__)

#: after an error answer: read and drop the client's remaining input for this long / this much
_DRAIN_S = 2.0
_DRAIN_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection limits of the HTTP server (defaults hold one abusive address off the rest)."""

    #: connections open from one client address (its oldest unserved one is closed past this)
    per_client: int = 32
    #: connections open in all (waitress stops accepting past this); well below the usual
    #: soft limit of 1024 open files, so accept() never fails for want of descriptors
    total: int = 512
    #: seconds from a request's first byte to its last (headers and body)
    request_timeout_s: float = 10.0
    #: seconds an idle keep-alive connection is kept (whole seconds: a waitress setting)
    idle_timeout_s: int = 30


class _RefusedEarly(Error):
    """A waitress error built from a gate refusal (answered before the body is read)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.description)
        self.code = refusal.code
        self.reason = refusal.reason
        self.title = refusal.title
        self.headers = refusal.headers


class _JsonErrorTask(ErrorTask):
    """waitress's error answers as `{"title", "description"}` JSON; the connection closes after."""

    def execute(self) -> None:
        error = self.request.error
        title = getattr(error, "title", error.reason)
        body = json.dumps({"title": title, "description": str(error.body)}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.response_headers.extend(getattr(error, "headers", ()))
        self.set_close_on_finish()
        self.channel.drain_after_close = True
        self.content_length = len(body)
        self.write(body)


class _Task(WSGITask):
    """A WSGI task whose 503 answers close the connection (the client is told to come back later)."""

    def build_response_header(self) -> bytes:
        if self.status.startswith("503"):
            self.set_close_on_finish()
        header: bytes = super().build_response_header()
        return header


class _GatedParser(HTTPRequestParser):
    """A request parser that asks the gate, once the headers are in, whether to read the body."""

    completed: bool
    error: Error | None

    def __init__(self, adj: Any, gate: RequestGate | None) -> None:
        super().__init__(adj)
        self._gate = gate

    def received(self, data: bytes) -> int:
        waiting = not self.headers_finished
        consumed: int = super().received(data)
        if waiting and self.headers_finished and not self.completed and self.error is None and self._gate:
            refusal = self._judge()
            if refusal is not None:
                self.error = _RefusedEarly(refusal)
                self.expect_continue = False  # no "100 Continue": the body is not wanted
                self.completed = True
        return consumed

    def _judge(self) -> Refusal | None:
        assert self._gate is not None
        length = None if self.chunked else self.content_length
        try:
            # WSGI paths are bytes held in a latin-1 str; Falcon routes on their UTF-8 reading.
            path = self.path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None  # the app answers this one
        return self._gate.judge(self.command, path, self.headers.get("AUTHORIZATION"), length)


class _Channel(HTTPChannel):
    """A channel that knows when its current request began and asks the gate about bodies."""

    task_class = _Task
    error_task_class = _JsonErrorTask

    def __init__(self, server: GuardedServer, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        self.parser_class = functools.partial(_GatedParser, gate=server.gate)
        #: when the first byte of the request being received arrived (None between requests)
        self.request_began: float | None = None
        #: set by an error answer: on close, drain the client's input a while instead of resetting it
        self.drain_after_close = False
        #: while draining: until when, and how many more bytes are dropped
        self.drain_until: float | None = None
        self._drain_left = 0
        super().__init__(server, sock, addr, adj, map)

    def handle_close(self) -> None:
        if self.drain_after_close and self.drain_until is None and self.connected:
            try:
                self.socket.shutdown(socket.SHUT_WR)  # the answer is whole: FIN after it
            except OSError:
                super().handle_close()
                return
            self.drain_until = time.monotonic() + _DRAIN_S
            self._drain_left = _DRAIN_BYTES
            self.will_close = self.close_when_flushed = False
            return
        super().handle_close()

    def readable(self) -> bool:
        if self.drain_until is not None:
            return True
        readable: bool = super().readable()
        return readable

    def writable(self) -> bool:
        if self.drain_until is not None:
            return False
        writable: bool = super().writable()
        return writable

    def handle_read(self) -> None:
        if self.drain_until is None:
            super().handle_read()
            return
        try:
            data = self.socket.recv(65536)
        except OSError:
            data = b""
        self._drain_left -= len(data)
        if not data or self._drain_left <= 0 or time.monotonic() > self.drain_until:
            self.drain_after_close = False
            super().handle_close()

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.monotonic()
        done: bool = super().received(data)
        if self.request is None:
            self.request_began = None
        return done


def _client(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server with per-client connection limits and a whole-request deadline."""

    channel_class = _Channel

    def __init__(self, app: Any, *, gate: RequestGate | None, limits: Limits, **kw: Any) -> None:
        self.gate = gate
        self.limits = limits
        #: connections closed to make room for a newer one from the same address, and ones refused
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        super().__init__(app, **kw)

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:  # the peer left before we got to it; waitress does the same
            logger.debug("accept failed", exc_info=True)
            return
        addr = self.fix_addr(addr)
        if not self._make_room(_client(addr)):
            self.refused += 1
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def _make_room(self, client: str) -> bool:
        """Below the per-client limit, or its oldest unserved connection closed; False if all are served."""
        mine = [c for c in self.active_channels.values() if _client(c.addr) == client and not c.will_close]
        if len(mine) < self.limits.per_client:
            return True
        unserved = [c for c in mine if not c.requests]
        if not unserved:
            return False
        victim = min(unserved, key=lambda c: (c.total_outbufs_len > 0, c.creation_time))
        self.evicted += 1
        if self.evicted in (1, 10, 100, 1000) or self.evicted % 10000 == 0:
            logger.warning("client %s is over %d connections: closed its oldest idle one (%d so far)",
                           client, self.limits.per_client, self.evicted)  # fmt: skip
        victim.drain_after_close = False  # closed now, not drained
        victim.handle_close()
        return True

    def maintenance(self, now: float) -> None:
        """waitress's idle timeout, plus: close requests that have not arrived whole in time."""
        super().maintenance(now)
        cutoff = time.monotonic() - self.limits.request_timeout_s
        for channel in list(self.active_channels.values()):
            drain_until = getattr(channel, "drain_until", None)
            if drain_until is not None and drain_until < time.monotonic():
                channel.drain_after_close = False
                channel.handle_close()
                continue
            began = getattr(channel, "request_began", None)
            if began is not None and began < cutoff and not channel.will_close:
                self.timed_out += 1
                channel.will_close = True
