"""/healthz, /readyz and /metrics latency while one client address holds 150 idle or slow sockets.

    .venv/bin/python benchmarks/http_abuse_bench.py                    # 150 sockets, 200 requests per route
    .venv/bin/python benchmarks/http_abuse_bench.py --sockets 300 --requests 50 --no-record

The abuser (127.0.0.1) opens half its sockets idle (connect, send nothing) and half
slow (a request line and then one header byte every 0.5 s, never finishing), and keeps
re-opening any the server closes. Meanwhile a client on the same address makes
`--requests` sequential requests per route, each on a new connection with a 1 s
timeout, and records each latency (a timeout counts as 1 s and as failed). Cases:
fieldwatch's server (`fieldwatch.http.serve`) and, for comparison, plain waitress with
its defaults (`waitress.create_server`), which is what served the API before. The
table goes to stdout and, unless --no-record, to the `## HTTP under abuse` section of
benchmarks/RESULTS.md (appended the first time).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from http_bench import record  # noqa: E402
from waitress.server import create_server  # noqa: E402

from fieldwatch.http import create_app, serve  # noqa: E402
from fieldwatch.http.server import HttpServer  # noqa: E402
from tests.httpapi.httpapi_fakes import make_deps  # noqa: E402

_SECTION = "## HTTP under abuse"
_ROUTES = ("/healthz", "/readyz", "/metrics")


class Abuser:
    """Keeps `n` sockets open to the port: half idle, half trickling an unfinished request."""

    def __init__(self, port: int, n: int) -> None:
        self.port = port
        self.n = n
        self.socks: list[socket.socket | None] = [None] * n
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            self.socks[i] = sock
        except OSError:
            self.socks[i] = None

    def start(self) -> Abuser:
        for i in range(self.n):
            self._open(i)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for i, sock in enumerate(self.socks):
                try:
                    if sock is None:
                        raise OSError
                    if i % 2:
                        sock.send(b"a")
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.reopened += 1
                    self._open(i)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            if sock is not None:
                sock.close()


@dataclass
class Row:
    """Latencies of one route under one server."""

    case: str
    route: str
    times: list[float]
    failed: int

    def cells(self) -> list[str]:
        ordered = sorted(self.times)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return [self.case, self.route, f"{statistics.median(ordered) * 1000:.1f}", f"{p99 * 1000:.1f}",
                f"{ordered[-1] * 1000:.1f}", f"{self.failed}/{len(ordered)}"]  # fmt: skip


def _one(port: int, route: str) -> float | None:
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", route)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            return None
    except OSError:
        return None
    finally:
        conn.close()
    elapsed = time.monotonic() - began
    return elapsed if elapsed <= 1.0 else None


def measure(case: str, port: int, sockets: int, requests: int) -> list[Row]:
    """Latency rows of every route with the abuser running."""
    abuser = Abuser(port, sockets).start()
    rows = []
    try:
        for route in _ROUTES:
            times, failed = [], 0
            for _ in range(requests):
                took = _one(port, route)
                if took is None:
                    failed += 1
                    took = 1.0
                times.append(took)
            rows.append(Row(case, route, times, failed))
    finally:
        abuser.stop()
    return rows


def _plain_waitress(app: Any) -> tuple[Any, Callable[[], None]]:
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        server.close()

    return server, stop


def render(rows: list[Row], args: argparse.Namespace) -> str:
    """The RESULTS.md section."""
    out = [
        _SECTION,
        "",
        f"Command: `.venv/bin/python benchmarks/http_abuse_bench.py --sockets {args.sockets} "
        f"--requests {args.requests}`",
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}). One abuser address (127.0.0.1) holds "
        f"{args.sockets} sockets, half idle, half trickling an unfinished request; requests from the same address, "
        "one per new connection, 1 s timeout (a timeout counts as 1,000 ms and as failed).",
        "",
        "| server | route | p50 ms | p99 ms | max ms | failed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    out += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(out) + "\n"


def main() -> int:
    """Run both cases, print and (unless --no-record) record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=150)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows: list[Row] = []
    running: HttpServer = serve(create_app(make_deps()), "127.0.0.1:0", threads=8)
    try:
        rows += measure("fieldwatch (guarded waitress)", running.port, args.sockets, args.requests)
    finally:
        running.stop()
    plain, stop = _plain_waitress(create_app(make_deps(register_collector=False)))
    try:
        rows += measure("plain waitress (defaults)", int(plain.effective_port), args.sockets,
                        max(10, args.requests // 10))  # fmt: skip
    finally:
        stop()
    text = render(rows, args)
    print(text)
    if not args.no_record:
        record(text, _SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
