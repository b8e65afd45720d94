"""`serve(app, listen, threads)`: waitress (hardened, see `guard`) in a background thread, stoppable."""

from __future__ import annotations

import logging
import threading
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel

from fieldwatch.http.app import FieldwatchApp
from fieldwatch.http.guard import GuardedServer, Limits

__all__ = ["HttpServer", "Limits", "serve"]

logger = logging.getLogger(__name__)


class HttpServer:
    """A running waitress server: `.port`, `.url`, `.stop()`."""

    def __init__(self, server: Any, host: str, port: int) -> None:
        self._server = server
        self.host = host
        self.port = port
        self._thread = threading.Thread(target=self._run, name=f"http-{port}", daemon=True)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        """Base URL clients use (`http://host:port`)."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:  # the server thread's boundary: log, the daemon's /healthz keeps answering elsewhere
            if not self._stopped.is_set():  # noqa: BLE001 (reported, not swallowed)
                logger.exception("HTTP server on port %d failed", self.port)

    def start(self) -> HttpServer:
        """Start the server thread (serve() does it)."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every connection (open follow streams end at their next write) and the threads."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        server = self._server

        def close_all() -> None:  # runs on the server's own loop thread
            for channel in list(server._map.values()):
                if isinstance(channel, HTTPChannel):
                    channel.drain_after_close = False  # stopping: close at once, no draining
                    try:
                        channel.handle_close()
                    except Exception:  # closing is best effort; keep closing the others
                        logger.debug("closing %r failed", channel, exc_info=True)
            server.close()  # the listening socket and the trigger: the loop's map empties and it returns

        try:
            server.trigger.pull_trigger(close_all)
        except OSError:  # the trigger is already closed: close from here
            close_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # the loop did not notice: close from here as a last resort
            close_all()
            self._thread.join(timeout_s)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_s)
        logger.info("HTTP server on %s stopped", self.url)


def serve(app: Any, listen: str, threads: int = 8, limits: Limits | None = None, **adjustments: Any) -> HttpServer:
    """Serve `app` on `listen` (`host:port`; port 0 picks a free one) with `threads` workers.

    A `FieldwatchApp` brings its gate: bodies it refuses are refused before they are read,
    and waitress never accepts one larger than the app's `max_body_bytes`.
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"listen must be host:port, got {listen!r}")
    host = host.strip("[]") or "0.0.0.0"
    limits = limits or Limits()
    gate = app.gate if isinstance(app, FieldwatchApp) else None
    settings: dict[str, Any] = {
        "connection_limit": limits.total,
        "channel_timeout": limits.idle_timeout_s,
        "cleanup_interval": 1,
    }
    if gate is not None:
        settings["max_request_body_size"] = gate.max_body_bytes + 1
        settings["inbuf_overflow"] = max(524288, gate.max_body_bytes + 1)  # an accepted body stays in memory
    settings.update(adjustments)
    adj = Adjustments(host=host, port=int(port_text), threads=threads, ident="fieldwatch", **settings)
    server = GuardedServer(app, gate=gate, limits=limits, map={}, adj=adj)
    running = HttpServer(server, host, int(server.effective_port)).start()
    logger.info("HTTP API listening on %s (%d threads)", running.url, threads)
    return running
