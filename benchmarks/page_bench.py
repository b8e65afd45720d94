"""The status page with many endpoints: page weight, snapshot size and time, browser render and update.

    .venv/bin/python benchmarks/page_bench.py                         # 10,000 endpoints
    .venv/bin/python benchmarks/page_bench.py --endpoints 1000 --seconds 10 --no-record

The app serves a status board of N endpoints (benchmarks/http_bench.py's board, with every
state represented) through a real waitress; headless Debian chromium (Selenium, driver path
given) opens `/`. Measured: the bytes of the page and its assets; GET /api/v1/overview (the
snapshot the page polls) full and 304; in the browser, the first render (parse + prepare +
render, from the page's own `window.fieldwatchTimings`) and when it completed after navigation
start; each update while 1 % of the endpoints change state every second; a filter keystroke
(synchronous re-render); DOM size and JS heap. The table goes to stdout and, unless
--no-record, to the `## Status page` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers

import prometheus_client  # noqa: E402
from http_bench import board_with, record  # noqa: E402

from fieldwatch import states  # noqa: E402
from fieldwatch.actors.tree import TreeView  # noqa: E402
from fieldwatch.http import AppDeps, create_app, serve  # noqa: E402
from tests.e2e.browser import start_browser  # noqa: E402
from tests.httpapi.httpapi_fakes import FakeController, FakeQueries, FakeStorage  # noqa: E402
from tests.ledger_helpers import set_fields  # noqa: E402

_STATES = (states.UP, states.DOWN, states.STALE, states.CONNECTING, states.FAULTY, states.DISABLED)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("ETag", "")
    except urllib.error.HTTPError as err:
        return err.code, b"", ""


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"{statistics.median(ordered):.1f} / {ordered[-1]:.1f}"


def run(endpoints: int, seconds: float) -> dict[str, Any]:
    board = board_with(endpoints)
    rng = random.Random(7)
    for i in range(0, endpoints, 37):
        set_fields(board, i, state=rng.choice(_STATES), since=time.time() - rng.uniform(0, 9000), reason="bench")
    queries = FakeQueries()
    for i in range(20):
        queries.add_event(f"site-{i:05d}", "icmp-0", "warning", f"bench event {i}")
    deps = AppDeps(controller=FakeController(), board=board, tree=TreeView(), storage=FakeStorage(),
                   registry=prometheus_client.CollectorRegistry(), token=None, log_file=None, queries=queries,
                   overview_cache_s=0.0)  # every request builds: the cost of one page alone  # fmt: skip
    server = serve(create_app(deps), "127.0.0.1:0", threads=4)
    out: dict[str, Any] = {"endpoints": endpoints}
    stop = threading.Event()
    try:
        base = server.url
        out["weight"] = {path: len(_get(base + path)[1]) for path in
                         ("/", "/static/page.js", "/static/page.css", "/static/favicon.svg")}  # fmt: skip
        full, unchanged = [], []
        for _ in range(10):
            started = time.perf_counter()
            _, body, etag = _get(base + "/api/v1/overview")
            full.append((time.perf_counter() - started) * 1000)
        for _ in range(10):
            started = time.perf_counter()
            status, _, _ = _get(base + "/api/v1/overview", {"If-None-Match": etag})
            unchanged.append((time.perf_counter() - started) * 1000)
        out["overview_bytes"], out["overview_full"], out["overview_304"], out["status_304"] = len(body), full, unchanged, status
        out["overview_gzip_bytes"] = len(_get(base + "/api/v1/overview", {"Accept-Encoding": "gzip"})[1])

        driver = start_browser(tempfile.mkdtemp(prefix="page-bench-"))
        try:
            driver.get(base + "/")
            deadline = time.monotonic() + 60
            while not driver.execute_script("return (window.fieldwatchTimings || []).length"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the page did not render")
                time.sleep(0.05)
            first = driver.execute_script(
                "const r = performance.getEntriesByType('resource').find(e => e.name.includes('/api/v1/overview'));"
                "return [window.fieldwatchTimings[0], r.responseEnd, document.querySelectorAll('[data-endpoint]').length]"
            )
            out["first_render_ms"], out["first_done_at_ms"], out["rows_in_dom"] = first[0], first[1] + first[0], first[2]

            def churn() -> None:  # 1 % of the endpoints change state every second
                while not stop.wait(1.0):
                    for i in rng.sample(range(endpoints), max(1, endpoints // 100)):
                        set_fields(board, i, state=rng.choice(_STATES), since=time.time())

            threading.Thread(target=churn, daemon=True).start()
            time.sleep(seconds)  # the page polls every 2 s meanwhile; its own timings are read after
            out["updates"] = driver.execute_script("return window.fieldwatchTimings.slice(1)")
            out["filter_ms"] = [driver.execute_script(
                "const q = document.getElementById('q'); const t = performance.now();"
                f"q.value = {text!r}; q.dispatchEvent(new Event('input')); return performance.now() - t;"
            ) for text in ("site-0004", "down", "")]  # fmt: skip
            out["dom_nodes"] = driver.execute_script("return document.getElementsByTagName('*').length")
            out["heap_mb"] = driver.execute_script("return performance.memory.usedJSHeapSize / 1e6")
            out["console_errors"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        finally:
            driver.quit()
    finally:
        stop.set()
        server.stop()
    return out


def report(r: dict[str, Any], command: str) -> str:
    weight = r["weight"]
    lines = [
        "## Status page\n",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs (shared: load "
        f"average {os.getloadavg()[0]:.1f} at the end; server times vary about 2x with the load), "
        f"Python {platform.python_version()}, headless Debian chromium.\n",
        f"Command: `{command}`\n",
        f"{r['endpoints']:,} endpoints (every state represented; 1 % change state every second while the page polls).\n",
        "| measure | value |",
        "|---|---:|",
        f"| page weight: HTML + script + style + icon (budget 60 kB) | {sum(weight.values()):,} B "
        f"({weight['/']:,} + {weight['/static/page.js']:,} + {weight['/static/page.css']:,} + "
        f"{weight['/static/favicon.svg']:,}) |",
        f"| GET /api/v1/overview body, plain / gzip (what a browser gets) | {r['overview_bytes'] / 1e6:.2f} MB / "
        f"{r['overview_gzip_bytes'] / 1e3:.0f} kB |",
        f"| GET /api/v1/overview full, p50 / max | {_ms(r['overview_full'])} ms |",
        f"| GET /api/v1/overview unchanged ({r['status_304']}), p50 / max | {_ms(r['overview_304'])} ms |",
        f"| browser: first snapshot parsed + rendered | {r['first_render_ms']:.1f} ms |",
        f"| browser: first render complete after navigation start | {r['first_done_at_ms']:.0f} ms |",
        f"| browser: each update (parse + prepare + render), p50 / max over {len(r['updates'])} polls | "
        f"{_ms(r['updates'])} ms |",
        f"| browser: filter keystroke re-render ('site-0004', 'down', cleared) | "
        f"{' / '.join(f'{v:.1f}' for v in r['filter_ms'])} ms |",
        f"| endpoint rows in the DOM (paged: 200 per page) / DOM elements | {r['rows_in_dom']} / {r['dom_nodes']:,} |",
        f"| JS heap used | {r['heap_mb']:.1f} MB |",
        f"| console errors | {len(r['console_errors'])} |",
        "",
        "Each poll that finds a change costs the server a full snapshot (JSON of every endpoint, "
        "built from the status board) and the browser a parse and a re-render of one page of rows; "
        "an unchanged snapshot is a 304 with no body but the same build (its ETag is a hash of the content). "
        "Measured with the build cache off (`overview_cache_s=0`); the daemon builds at most one snapshot "
        "per second however many pages poll.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run, print and (unless --no-record) record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the page follows changes")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    result = run(args.endpoints, args.seconds)
    command = "python benchmarks/page_bench.py" + (
        f" --endpoints {args.endpoints} --seconds {args.seconds:g}"
        if (args.endpoints, args.seconds) != (10_000, 20.0) else "")  # fmt: skip
    text = report(result, command)
    print(text)
    if not args.no_record:
        record(text, "Status page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
