"""Chart latency on a full-size rollup table: 1,000 endpoints x 30 days of 1-minute rollups.

    .venv/bin/python benchmarks/chart_bench.py --endpoints 1000 --days 30

The 1-minute and 1-hour rollup tables are filled directly with SQL (one series per
endpoint, one row a minute: 43.2 million rows for the defaults), not through the
writer: writing 30 days of 1,000 endpoints through the real path takes hours on the
2-core machine (storage_growth.py does that at a smaller scale). Then the chart
queries of GET /api/v1/readings run on it (median of 20): 24 h at step 60 (1,440
buckets), 7 d at step 600, 30 d at step 3600.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fieldwatch.storage import commands as c  # noqa: E402
from fieldwatch.storage import queries, sites  # noqa: E402
from fieldwatch.storage.db import init_database, open_database, write_transaction  # noqa: E402
from fieldwatch.storage.migrations import migrate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fw-chart-"))
    db = init_database(open_database(f"sqlite:///{tmp / 'chart.db'}"))
    migrate(db)
    spec = c.SiteSpec("plant", True, "{}", tuple(c.EndpointSpec(f"e{i}", "opcua", True) for i in range(args.endpoints)))
    with write_transaction(db):
        ids = [e.id for e in sites.execute(c.CreateSite(spec), 0.0).endpoints]
        for e in ids:
            db.execute_sql("INSERT INTO series (endpoint_id, name, device) VALUES (?, 'level', '')", (e,))
    series = [r[0] for r in db.execute_sql("SELECT id FROM series ORDER BY id").fetchall()]
    end = int(time.time()) // 3600 * 3600
    start = end - args.days * 86_400
    rng = random.Random(16)
    began = time.perf_counter()
    for sid in series:
        rows_m, rows_h = [], []
        for b in range(start, end, 60):
            v = rng.random() * 100
            rows_m.append((sid, b, v - 1, v + 1, v * 6, 6, v, b * 1000 + 50_000))
        for b in range(start, end, 3600):
            rows_h.append((sid, b, 0.0, 100.0, 50.0 * 360, 360, 50.0, b * 1000 + 3_550_000))
        with write_transaction(db):
            db.cursor().executemany("INSERT INTO rollup_1m VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_m)
            db.cursor().executemany("INSERT INTO rollup_1h VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_h)
    minutes = db.execute_sql("SELECT COUNT(*) FROM rollup_1m").fetchone()[0]
    print(f"filled {minutes} 1-minute rollup rows ({args.endpoints} series x {args.days} days) in "
          f"{time.perf_counter() - began:.0f} s; file {os.path.getsize(tmp / 'chart.db') / 1e9:.2f} GB")
    one = f"e{args.endpoints // 2}"
    charts = {
        "24 h, step 60 (1,440 buckets)": (86_400, 60, 1440),
        "7 d, step 600 (1,008 buckets)": (7 * 86_400, 600, 1008),
        "30 d, step 3600 (720 buckets)": (30 * 86_400, 3600, 720),
    }
    for label, (span, step, limit) in charts.items():
        def chart(span: int = span, step: int = step, limit: int = limit) -> int:
            return len(queries.readings(site="plant", endpoint=one, name="level", step=step,
                                        since=end - span, until=end, limit=limit)[0])
        items = chart()
        times = []
        for _ in range(20):
            t = time.perf_counter()
            chart()
            times.append((time.perf_counter() - t) * 1000)
        print(f"chart {label}: {items} buckets, median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    print(f"(database left in {tmp}; delete it when done)")


if __name__ == "__main__":
    main()
