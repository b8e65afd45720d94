"""Schema v1 -> v2 migration time on a populated database.

    .venv/bin/python benchmarks/migrate_bench.py --rows 10000000
    .venv/bin/python benchmarks/migrate_bench.py --rows 1000000 --url postgresql://postgres@127.0.0.1:5432/test

Builds a v1 database (schema version 1, as the previous release left it) holding
`rows` readings of 1,000 endpoints: half ICMP (a packet_loss and an rtt row per probe
at 10 s), half numeric readings with a source time, MQTT-style keys on a tenth;
then times `migrate()` to version 2 and reports rows per second and file sizes
before and after (SQLite; the v1 pages stay in the file until a VACUUM).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fieldwatch.storage import commands as c  # noqa: E402
from fieldwatch.storage import sites  # noqa: E402
from fieldwatch.storage.db import close_database, init_database, is_sqlite, open_database, write_transaction  # noqa: E402
from fieldwatch.storage.migrations import migrate  # noqa: E402
from fieldwatch.storage.testing import create_schema, drop_schema  # noqa: E402

_V1_INSERT = (
    "INSERT INTO reading (endpoint_id, name, device, value_num, value_text, quality, source_time, received_at, msg_key)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fw-migrate-"))
    url = args.url or f"sqlite:///{tmp / 'v1.db'}"
    schema = create_schema(url, "fwmigrate")
    db = init_database(open_database(url, schema=schema) if schema else url)
    migrate(db, target=1)
    spec = c.SiteSpec("plant", True, "{}", tuple(c.EndpointSpec(f"e{i}", "icmp" if i % 2 == 0 else "mqtt", True)
                                                  for i in range(args.endpoints)))
    with write_transaction(db):
        ids = [e.id for e in sites.execute(c.CreateSite(spec), 0.0).endpoints]
    rng = random.Random(16)
    t0 = time.time() - 30 * 86_400
    sql = _V1_INSERT.format(p=db.param)
    began = time.perf_counter()
    written = tick = 0
    while written < args.rows:
        rows = []
        for i, e in enumerate(ids):
            at = t0 + tick * 10 + i * 0.01
            if i % 2 == 0:
                rows.append((e, "packet_loss", None, 0.0, None, "Good", at, at + 0.001, None))
                rows.append((e, "rtt", None, 0.0005 + rng.random() / 1000, "min/avg/max = ...", "Good", at, at + 0.001, None))
            else:
                key = f"k{tick}-{i}" if i % 10 == 1 else None
                rows.append((e, "level", f"d{i % 4}", round(rng.uniform(0, 100), 2), None, "Good", at, at + 0.05, key))
        rows = rows[: args.rows - written]
        with write_transaction(db):
            if is_sqlite(db):
                db.cursor().executemany(sql, rows)
            else:
                from psycopg2.extras import execute_batch

                execute_batch(db.cursor(), sql, rows, page_size=2000)
        written += len(rows)
        tick += 1
    filled = time.perf_counter() - began
    size0 = os.path.getsize(tmp / "v1.db") if is_sqlite(db) else 0
    print(f"v1 database: {written} readings written in {filled:.0f} s" + (f", {size0 / 1e6:.0f} MB" if size0 else ""))
    began = time.perf_counter()
    assert migrate(db) == 2
    took = time.perf_counter() - began
    rows_v2 = db.execute_sql("SELECT COUNT(*) FROM reading_raw").fetchone()[0]
    print(f"migration v1 -> v2: {took:.0f} s ({written / took:.0f} v1 rows/s), {rows_v2} v2 rows")
    if is_sqlite(db):
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        size1 = os.path.getsize(tmp / "v1.db")
        began = time.perf_counter()
        db.execute_sql("VACUUM")
        vacuum = time.perf_counter() - began
        size2 = os.path.getsize(tmp / "v1.db")
        print(f"file after migration {size1 / 1e6:.0f} MB; VACUUM {vacuum:.0f} s -> {size2 / 1e6:.0f} MB")
    close_database()
    if schema is not None:  # the run's own schema goes with it
        drop_schema(url, schema)


if __name__ == "__main__":
    main()
