"""OPC UA read throughput through OpcuaSession on the shared loop thread.

Starts local simulation servers (subprocesses), then measures blocking
`OpcuaSession.read` calls the way endpoint actors make them (one thread per
endpoint, all sessions on ONE asyncio loop thread):

- one endpoint, one node per Read;
- one endpoint, all three simulated nodes per Read;
- N endpoints (default 50) spread over a few servers, each from its own thread.

Run: ``.venv/bin/python benchmarks/opcua_bench.py [--seconds 5] [--endpoints 50] [--servers 5]``
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import asyncua  # noqa: E402

from fieldwatch.actors.opcua.loop import OpcuaLoop  # noqa: E402
from fieldwatch.actors.opcua.session import OpcuaSession  # noqa: E402
from fieldwatch.sim.opcua_server import NODES  # noqa: E402

ONE = [NODES["counter"]]
ALL = [NODES["level"], NODES["pump"], NODES["counter"]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server() -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fieldwatch.sim.opcua_server", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.split(" ", 1)[1].strip()


def _hammer(session: OpcuaSession, nodes: list[str], seconds: float, out: list[float]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        started = time.monotonic()
        if started >= deadline:
            return
        values = session.read_nowait(nodes).result(timeout=10)
        out.append(time.monotonic() - started)
        assert values[0].good, values[0]


def _run(sessions: list[OpcuaSession], nodes: list[str], seconds: float) -> tuple[float, float, float, float]:
    """Return (requests/s, node reads/s, p50 ms, p99 ms) with one thread per session."""
    latencies: list[list[float]] = [[] for _ in sessions]
    threads = [
        threading.Thread(target=_hammer, args=(session, nodes, seconds, latencies[i]))
        for i, session in enumerate(sessions)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for lat in latencies for x in lat)
    count = len(flat)
    p99 = flat[min(count - 1, int(count * 0.99))] if flat else 0.0
    return count / elapsed, count * len(nodes) / elapsed, statistics.median(flat) * 1000, p99 * 1000


def main() -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--servers", type=int, default=5)
    args = parser.parse_args()

    servers = [_start_server() for _ in range(args.servers)]
    loop = OpcuaLoop.shared()
    try:
        one = OpcuaSession(servers[0][1], timeout_s=5, loop=loop)
        one.connect_nowait().result(timeout=10)
        rows = [
            ("1 endpoint, 1 node/Read", *_run([one], ONE, args.seconds)),
            ("1 endpoint, 3 nodes/Read", *_run([one], ALL, args.seconds)),
        ]
        one.close_nowait().result(timeout=10)
        many = [OpcuaSession(servers[i % len(servers)][1], timeout_s=5, loop=loop) for i in range(args.endpoints)]
        started = time.monotonic()
        for session in many:
            session.connect_nowait().result(timeout=10)
        connect_s = time.monotonic() - started
        rows.append(
            (f"{args.endpoints} endpoints / {len(servers)} servers, 1 node/Read", *_run(many, ONE, args.seconds))
        )
        rows.append(
            (f"{args.endpoints} endpoints / {len(servers)} servers, 3 nodes/Read", *_run(many, ALL, args.seconds))
        )
        for session in many:
            session.close_nowait().result(timeout=10)
    finally:
        loop.stop()
        for proc, _url in servers:
            proc.send_signal(signal.SIGTERM)
        for proc, _url in servers:
            proc.wait(timeout=10)

    print(
        f"asyncua {asyncua.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{args.seconds:g} s per case; {args.endpoints} sequential connects took {connect_s:.2f} s"
    )
    print()
    print("| case | Read requests/s | node reads/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, rps, nps, p50, p99 in rows:
        print(f"| {name} | {rps:,.0f} | {nps:,.0f} | {p50:.2f} | {p99:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
