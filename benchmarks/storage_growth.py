"""Storage growth: N endpoints x D days, time-compressed, through the real persistence path.

    .venv/bin/python benchmarks/storage_growth.py --endpoints 100 --days 30 --interval 60 --openmetrics

Simulated time runs from D days ago to now. Every `interval` simulated seconds each
endpoint produces one reading, alternating ICMP-style rows (rtt with packet_loss, one
row a probe) and plain numeric readings with a source time, submitted to a real
StorageGateway and committed by the real PersistenceActor (SQLite in a temp dir, or
--url postgresql://...). A retention pass (`storage.retention.Pass`, default tiers)
runs every `--retention-every` simulated seconds, as the RetentionActor would, timed.

Reports: bytes per raw reading (pages in use, all indexes, rollups included, at the end of
the first simulated day, before anything expires) and bytes per row of each table at the
end (SQLite dbstat); steady-state disk of the issue's reference deployments at default
retention (computed from those row sizes); retention cost per pass; query latencies
(median of 20: a raw page of one endpoint and of all, 24 h / 30 d / 1 y charts of one
series); with --openmetrics, the same samples as OpenMetrics imported by
`promtool tsdb create-blocks-from openmetrics`, and its bytes per sample.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import peewee  # noqa: E402
import pykka  # noqa: E402

from fieldwatch.actors.persistence import PersistenceActor  # noqa: E402
from fieldwatch.actors.scheduler import Scheduler  # noqa: E402
from fieldwatch.storage import commands as c  # noqa: E402
from fieldwatch.storage import queries  # noqa: E402
from fieldwatch.storage.db import (  # noqa: E402
    close_database,
    init_database,
    is_sqlite,
    open_database,
    write_transaction,
)
from fieldwatch.storage.gateway import StorageGateway  # noqa: E402
from fieldwatch.storage.migrations import migrate  # noqa: E402
from fieldwatch.storage.recent import move_recent  # noqa: E402
from fieldwatch.storage.retention import DAY_S, Pass, Retention  # noqa: E402
from fieldwatch.storage.testing import (  # noqa: E402
    create_schema,
    drop_schema,
    start_generation,  # noqa: E402
)
from fieldwatch.storage.writes import ReadingRecord  # noqa: E402

DEFAULT = Retention()
#: The issue's reference deployments: (label, [(series, readings per second per series,
#: raw rows per reading)]) - an ICMP probe is one raw row, two rollup series (rtt, loss).
DEPLOYMENTS = (
    ("10,000 ICMP endpoints at 10 s", [("icmp", 10_000, 1 / 10)]),
    (
        "modest plant: 20 OPC UA x 6 nodes at 5 s, 5 MQTT sites x 20 msg/s, 200 pings at 30 s",
        [("num", 120, 1 / 5), ("num", 100, 1.0), ("icmp", 200, 1 / 30)],
    ),
)


def _used(db: Any) -> dict[str, tuple[int, int]]:
    """table -> (bytes in pages, rows), SQLite only (dbstat)."""
    out = {}
    for table in ("reading_raw", "rollup_1m", "rollup_1h", "series", "reading_key"):
        size = db.execute_sql(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ? OR name IN "
            "(SELECT name FROM sqlite_master WHERE tbl_name = ? AND type = 'index')",
            (table, table),
        ).fetchone()[0]
        rows = db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        out[table] = (int(size), int(rows))
    # raw rows staged by the writer (storage/recent.py) count as raw rows
    staged = db.execute_sql("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'reading_recent'").fetchone()[0]
    staged_rows = db.execute_sql("SELECT COUNT(*) FROM reading_recent").fetchone()[0]
    out["reading_raw"] = (out["reading_raw"][0] + int(staged), out["reading_raw"][1] + int(staged_rows))
    return out


def _total_used(db: Any) -> int:
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    free = db.execute_sql("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * db.execute_sql("PRAGMA page_size").fetchone()[0])


def _median_ms(fn: Any, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:  # noqa: PLR0915 - one linear script
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--interval", type=float, default=60.0)
    ap.add_argument("--retention-every", type=float, default=600.0, help="simulated seconds between passes")
    ap.add_argument("--url", default=None)
    ap.add_argument("--openmetrics", action="store_true")
    ap.add_argument(
        "--openmetrics-days", type=float, default=2.0,
        help="samples of the first N simulated days only: promtool 2.42 re-reads its whole input once per 2 h block",
    )
    args = ap.parse_args()
    rng = random.Random(16)
    tmp = Path(tempfile.mkdtemp(prefix="fw-growth-"))
    url = args.url or f"sqlite:///{tmp / 'growth.db'}"
    schema = create_schema(url, "fwgrowth")
    db = init_database(open_database(url, schema=schema) if schema else url)
    migrate(db)
    scheduler = Scheduler("growth")
    scheduler.start()
    gateway = StorageGateway(max_queue=200_000)
    PersistenceActor.start(gateway, scheduler=scheduler)
    spec = c.SiteSpec("plant", True, "{}", tuple(c.EndpointSpec(f"e{i}", "icmp" if i % 2 == 0 else "opcua", True)
                                                  for i in range(args.endpoints)))
    ids = [e.id for e in gateway.command(c.CreateSite(spec), timeout_s=60).endpoints]
    gens = {e: start_generation(gateway, e) for e in ids}
    om = open(tmp / "samples.om", "w") if args.openmetrics else None  # noqa: SIM115
    exported = False
    if om is not None:
        om.write("# TYPE fieldwatch_reading_value gauge\n")
    end = time.time()
    start = end - args.days * DAY_S
    ticks = int(args.days * DAY_S / args.interval)
    level = [50.0] * len(ids)
    passes: list[tuple[float, int]] = []
    next_retention = start + args.retention_every
    day1: tuple[int, int] | None = None
    lock_waits = 0
    readings = 0
    t_wall = time.perf_counter()
    om_until = start + args.openmetrics_days * DAY_S
    for k in range(ticks):
        t = start + k * args.interval
        if om is not None and t >= om_until:
            om.write("# EOF\n")
            om.close()
            om = None
            exported = True
        batch = []
        for i, e in enumerate(ids):
            at = t + (i * args.interval / len(ids))
            if i % 2 == 0:
                lost = rng.random() < 0.01
                rtt = None if lost else 0.0002 + rng.random() * 0.0008
                batch.append(ReadingRecord(endpoint_id=e, generation=gens[e], name="rtt", value_num=rtt,
                                           source_time=at, received_at=at + (rtt or 1.0), aux_name="packet_loss",
                                           aux_num=1.0 if lost else 0.0))
                if om is not None:
                    ms = round(at * 1000)
                    if rtt is not None:
                        om.write(f'fieldwatch_reading_value{{endpoint="e{i}",name="rtt"}} {rtt} {ms / 1000:.3f}\n')
                    om.write(f'fieldwatch_reading_value{{endpoint="e{i}",name="packet_loss"}} {1.0 if lost else 0.0} {ms / 1000:.3f}\n')
            else:
                level[i] = min(100.0, max(0.0, level[i] + rng.gauss(0, 0.5)))
                value = round(level[i], 3)
                batch.append(ReadingRecord(endpoint_id=e, generation=gens[e], name="level", value_num=value,
                                           source_time=at, received_at=at + 0.05))
                if om is not None:
                    om.write(f'fieldwatch_reading_value{{endpoint="e{i}",name="level"}} {value} {round(at * 1000) / 1000:.3f}\n')
        gateway.wait_capacity(60.0)
        gateway.submit_many(batch)
        readings += len(batch)
        if day1 is None and t - start >= DAY_S and is_sqlite(db):
            while gateway.queue_depth:
                time.sleep(0.01)
            day1 = (_total_used(db), _used(db)["reading_raw"][1])
        if t >= next_retention:
            # time-compressed, the writer is saturated; at real rates it is idle most of the time: let it
            # catch up first, as it would have (a chunk that still finds it busy waits and retries)
            next_retention += args.retention_every
            while gateway.queue_depth:
                time.sleep(0.005)
            run = Pass(DEFAULT, t)
            began = time.perf_counter()
            while True:
                try:
                    if run.step(db):
                        break
                except peewee.OperationalError:  # locked by the writer for longer than the busy timeout
                    lock_waits += 1
            passes.append((time.perf_counter() - began, sum(run.deleted.values())))
    while gateway.queue_depth:
        time.sleep(0.01)
    wall = time.perf_counter() - t_wall
    print(f"# {args.endpoints} endpoints x {args.days:g} days at {args.interval:g} s: {readings} readings "
          f"written in {wall:.0f} s ({readings / wall:.0f}/s), {len(passes)} retention passes "
          f"({lock_waits} chunks retried after a busy timeout)")
    if day1 is not None:
        print(f"bytes per raw reading after day 1 (pages in use incl. rollups and indexes): {day1[0] / day1[1]:.1f}")
    sizes: dict[str, tuple[int, int]] = {}
    if is_sqlite(db):
        sizes = _used(db)
        for table, (size, rows) in sizes.items():
            print(f"  {table}: {rows} rows, {size} bytes, {size / max(rows, 1):.1f} bytes/row")
        print(f"  file: {os.path.getsize(tmp / 'growth.db')} bytes (+WAL {os.path.getsize(tmp / 'growth.db-wal')})")
    busy = [p for p in passes if p[1]]
    if busy:
        secs = [p[0] for p in busy]
        rows = [p[1] for p in busy]
        print(f"retention passes that deleted rows: {len(busy)}; per pass median {statistics.median(secs) * 1000:.1f} ms"
              f" (max {max(secs) * 1000:.1f} ms), median {statistics.median(rows):.0f} rows;"
              f" {sum(secs) / sum(rows) * 1e6:.2f} us per deleted row")
    idle = [p[0] for p in passes if not p[1]]
    if idle:
        print(f"retention passes with nothing expired: {len(idle)}, median {statistics.median(idle) * 1000:.1f} ms")
    if sizes:
        raw_b = sizes["reading_raw"][0] / max(sizes["reading_raw"][1], 1)
        m_b = sizes["rollup_1m"][0] / max(sizes["rollup_1m"][1], 1)
        h_b = sizes["rollup_1h"][0] / max(sizes["rollup_1h"][1], 1)
        for label, parts in DEPLOYMENTS:
            raw = minute = hour = 0.0
            for kind, series, rate in parts:
                rollups = 2 if kind == "icmp" else 1
                raw += series * rate * DAY_S * DEFAULT.raw_days
                minute += series * rollups * min(1.0, 60 * rate) * 1440 * DEFAULT.minute_days
                hour += series * rollups * 24 * DEFAULT.hour_days
            total = raw * raw_b + minute * m_b + hour * h_b
            print(f"steady state, {label}: raw {raw * raw_b / 1e9:.1f} GB + 1-minute {minute * m_b / 1e9:.1f} GB"
                  f" + 1-hour {hour * h_b / 1e9:.2f} GB = {total / 1e9:.1f} GB")
    one = f"e{0}"
    lat = {
        "raw page, one endpoint (100)": lambda: queries.readings(site="plant", endpoint=one, limit=100),
        "raw page, all endpoints (100)": lambda: queries.readings(limit=100),
        "24 h chart, step 60 (1,440 buckets)": lambda: queries.readings(
            site="plant", endpoint=one, name="rtt", step=60, since=end - DAY_S, until=end, limit=1440),
        "30 d chart, step 3600 (720 buckets)": lambda: queries.readings(
            site="plant", endpoint=one, name="rtt", step=3600, since=end - 30 * DAY_S, until=end, limit=720),
        "1 y chart, step 86400 (365 buckets)": lambda: queries.readings(
            site="plant", endpoint=one, name="rtt", step=86400, since=end - 365 * DAY_S, until=end, limit=365),
    }
    for label, fn in lat.items():
        items = len(fn()[0])
        print(f"query {label}: {_median_ms(fn):.1f} ms ({items} items)")
    if is_sqlite(db):
        # The writer moves its staged rows once a minute of wall time (storage/recent.py): in this
        # time-compressed run many simulated minutes wait there, and each query scans them. Time the
        # queries again as a daemon's readers find them after a move.
        staged = int(db.execute_sql("SELECT COUNT(*) FROM reading_recent").fetchone()[0])
        with write_transaction(db):
            move_recent(db)
        print(f"after moving the {staged} rows still staged:")
        for label, fn in lat.items():
            items = len(fn()[0])
            print(f"query {label}: {_median_ms(fn):.1f} ms ({items} items)")
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    scheduler.stop()
    close_database()
    if schema is not None:  # the run's own schema goes with it
        drop_schema(url, schema)
    if om is not None:
        om.write("# EOF\n")
        om.close()
        exported = True
    if exported:
        out = tmp / "tsdb"
        began = time.perf_counter()
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(tmp / "samples.om"), str(out)],
                       check=True, capture_output=True)
        took = time.perf_counter() - began
        total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        samples = sum(1 for line in open(tmp / "samples.om") if line.startswith("fieldwatch"))  # noqa: SIM115
        chunks = sum(f.stat().st_size for f in out.rglob("chunks/*") if f.is_file())
        print(f"promtool tsdb create-blocks-from openmetrics: {samples} samples (first {args.openmetrics_days:g} days), "
              f"{total} bytes in 2 h blocks = {total / samples:.2f} bytes/sample, of which chunks "
              f"{chunks / samples:.2f} ({took:.0f} s); OpenMetrics text "
              f"{os.path.getsize(tmp / 'samples.om') / samples:.1f} bytes/sample")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)  # actor threads must not keep a failed run alive
