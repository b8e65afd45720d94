"""/metrics render time with many endpoints on the status board (p50/p99 over N renders).

    .venv/bin/python benchmarks/http_bench.py                      # 10,000 endpoints, 50 renders
    .venv/bin/python benchmarks/http_bench.py --endpoints 1000 --renders 20 --no-record

Cases: the collector's own text renderer (what /metrics serves), the whole GET /metrics
through a real waitress server (urllib client, same machine), and, for scale, the same
registry through prometheus_client's generic `generate_latest`. The table goes to stdout
and, unless --no-record, to the `## HTTP` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import prometheus_client
from prometheus_client.exposition import generate_latest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers

from fieldwatch import states  # noqa: E402
from fieldwatch.actors.icmp.stats import fold_probe  # noqa: E402
from fieldwatch.actors.tree import TreeView  # noqa: E402
from fieldwatch.http import AppDeps, FieldwatchCollector, create_app, serve  # noqa: E402
from fieldwatch.ledger import EndpointLedger  # noqa: E402
from fieldwatch.status import EndpointStatus  # noqa: E402
from tests.httpapi.httpapi_fakes import FakeController, FakeQueries, FakeStorage  # noqa: E402
from tests.ledger_helpers import new_ledger, seed  # noqa: E402

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
_KINDS = ("icmp", "mqtt", "opcua")


def board_with(n: int) -> EndpointLedger:
    """`n` endpoints, a third of each kind, 10 per site, with counters, RTTs and some alerts."""
    board = new_ledger()
    now = time.time()
    for i in range(n):
        kind = _KINDS[i % 3]
        state = states.DOWN if i % 50 == 0 else states.UP
        seed(board, EndpointStatus(i, f"site-{i // 10:05d}", f"{kind}-{i % 10}", kind, state=state,
                                      last_data_at=now - i % 7, fresh_within_s=30, restarts=i % 3,
                                      reconnects=i % 5))  # fmt: skip
        if kind == "icmp":
            board.incarnation(i, 0).observe(fold_probe, ([0.0008, 0.0021, 0.013], 0.0))
        elif kind == "mqtt":
            board.incarnation(i, 0).count("mqtt_messages", "stored", 1000 + i)
            board.incarnation(i, 0).count("mqtt_messages", "parse_error", i % 4)
        else:
            board.incarnation(i, 0).count("opcua_reads", "ok", 500 + i)
        if state == states.DOWN:
            board.incarnation(i, 0).alert("down", "warning", "", "")
    return board


@dataclass
class Row:
    """One benchmark case."""

    case: str
    times: list[float]
    size: int

    def cells(self) -> list[str]:
        ms = sorted(t * 1000 for t in self.times)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return [self.case, f"{statistics.median(ms):.1f}", f"{p99:.1f}", f"{ms[-1]:.1f}", f"{self.size / 1e6:.1f}"]


def _measure(case: str, fn: Callable[[], bytes], renders: int) -> Row:
    size = len(fn())  # warm-up
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return Row(case, times, size)


def run(endpoints: int, renders: int) -> tuple[list[Row], int]:
    """Measure every case; returns the rows and the number of exposition lines."""
    board = board_with(endpoints)
    registry = prometheus_client.CollectorRegistry()
    deps = AppDeps(controller=FakeController(), board=board, tree=TreeView(), storage=FakeStorage(),
                   registry=registry, token=None, log_file=None, queries=FakeQueries())  # fmt: skip
    app = create_app(deps)  # registers its collector on `registry`
    own = prometheus_client.CollectorRegistry()  # the same collector alone, called directly
    collector = FieldwatchCollector(board, deps.tree, deps.storage)
    own.register(collector)
    rows = [_measure("collector.render (what /metrics serves)", lambda: collector.render(own), renders)]
    server = serve(app, "127.0.0.1:0", threads=4)
    try:

        def fetch() -> bytes:
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as resp:
                return bytes(resp.read())

        rows.append(_measure("GET /metrics through waitress", fetch, renders))
    finally:
        server.stop()
    rows.append(_measure("prometheus_client generate_latest (for scale)", lambda: generate_latest(own),
                         max(3, renders // 10)))  # fmt: skip
    lines = collector.render(own).count(b"\n")
    return rows, lines


def table(rows: list[Row]) -> str:
    """Markdown table of the rows."""
    out = ["| case | p50 ms | p99 ms | max ms | body MB |", "|---|---:|---:|---:|---:|"]
    out += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(out)


def record(text: str, section: str = "HTTP") -> None:
    """Replace the `## <section>` of RESULTS.md (or append it); other sections stay as they are."""
    section = section.removeprefix("## ")
    with open(_RESULTS, encoding="utf-8") as f:
        content = f.read()
    start = content.find(f"\n## {section}\n")
    if start < 0:
        content = content.rstrip("\n") + "\n\n" + text
    else:
        end = content.find("\n## ", start + 1)
        content = content[: start + 1] + text + ("\n" + content[end + 1 :] if end >= 0 else "")
    with open(_RESULTS, "w", encoding="utf-8") as f:
        f.write(content.rstrip("\n") + "\n")


def main() -> int:
    """Run, print and (unless --no-record) record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows, lines = run(args.endpoints, args.renders)
    command = "python benchmarks/http_bench.py" + (
        f" --endpoints {args.endpoints} --renders {args.renders}"
        if (args.endpoints, args.renders) != (10_000, 50) else "")  # fmt: skip
    text = (
        "## HTTP\n\n"
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, prometheus_client {importlib.metadata.version('prometheus-client')}.\n\n"
        f"Command: `{command}`\n\n"
        f"/metrics with {args.endpoints:,} endpoints on the status board (a third each of icmp, mqtt, opcua; "
        f"{lines:,} exposition lines), {args.renders} renders per case (generate_latest: fewer). "
        "Target: under 500 ms.\n\n" + table(rows) + "\n"
    )  # fmt: skip
    print(text)
    if not args.no_record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
