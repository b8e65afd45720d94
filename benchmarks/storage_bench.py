"""Storage benchmark: sustained batched writes of readings through the real path.

Producers build ReadingRecords and submit them to the StorageGateway (with
back-pressure, as the MQTT actor does); the PersistenceActor commits them in batches.
Reports readings/s from the first submit until everything is committed, and the
commit latency of a batch (p50/p99).

    .venv/bin/python benchmarks/storage_bench.py                       # SQLite in a temp dir
    .venv/bin/python benchmarks/storage_bench.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pykka

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fieldwatch.actors.persistence import PersistenceActor  # noqa: E402
from fieldwatch.actors.scheduler import Scheduler  # noqa: E402
from fieldwatch.policy import Batch, StoragePolicy  # noqa: E402
from fieldwatch.storage import commands as c  # noqa: E402
from fieldwatch.storage.db import close_database, init_database, open_database  # noqa: E402
from fieldwatch.storage.gateway import StorageGateway  # noqa: E402
from fieldwatch.storage.migrations import migrate  # noqa: E402
from fieldwatch.storage.testing import start_generation  # noqa: E402
from fieldwatch.storage.writes import ReadingRecord  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(url: str, readings: int, endpoints: int, producers: int, max_rows: int, msg_keys: bool) -> dict[str, object]:
    """Write `readings` readings through gateway + actor; return the measurements."""
    schema = None
    if url.startswith(("postgresql://", "postgres://")):
        schema = f"fwbench_{uuid.uuid4().hex[:8]}"
        admin = open_database(url)
        admin.execute_sql(f"CREATE SCHEMA {schema}")
        admin.close()
    db = init_database(open_database(url, schema=schema) if schema else url)
    migrate(db)
    scheduler = Scheduler("bench-scheduler")
    scheduler.start()
    gateway = StorageGateway(max_queue=100_000)
    commits: list[tuple[float, int]] = []
    policy = StoragePolicy(batch=Batch(max_rows=max_rows))
    PersistenceActor.start(
        gateway, policy=policy, scheduler=scheduler, commit_listener=lambda s, n: commits.append((s, n))
    )
    site = gateway.command(
        c.CreateSite(
            c.SiteSpec("bench", True, "{}", tuple(c.EndpointSpec(f"e{i}", "mqtt", True) for i in range(endpoints)))
        ),
        timeout_s=30,
    )
    ids = [e.id for e in site.endpoints]
    generations = {e: start_generation(gateway, e) for e in ids}
    while gateway.queue_depth:
        time.sleep(0.001)
    commits.clear()

    per_producer = readings // producers

    def produce(offset: int) -> None:
        submit, wait = gateway.submit, gateway.wait_capacity
        now = time.time()
        for i in range(offset, offset + per_producer):
            if i % 1000 == 0:
                wait(60.0)
                now = time.time()
            e = ids[i % endpoints]
            submit(
                ReadingRecord(
                    endpoint_id=e,
                    generation=generations[e],
                    name="value",
                    value_num=float(i),
                    value_text=None,
                    quality="good",
                    source_time=now,
                    received_at=now,
                    device="dev",
                    msg_key=f"k{i}" if msg_keys else None,
                )
            )

    threads = [threading.Thread(target=produce, args=(p * per_producer,)) for p in range(producers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while gateway.queue_depth:
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    stats = gateway.stats()
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    scheduler.stop()
    stored = db.execute_sql("SELECT COUNT(*) FROM reading").fetchone()[0]
    close_database()
    if schema:
        admin = open_database(url)
        admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    seconds = [s for s, _ in commits]
    total = per_producer * producers
    return {
        "backend": url.split(":", 1)[0],
        "readings": total,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(total / elapsed),
        "batches": len(commits),
        "mean_batch_rows": round(statistics.mean(n for _, n in commits), 1) if commits else 0,
        "commit_p50_ms": round(_percentile(seconds, 0.50) * 1000, 2) if seconds else None,
        "commit_p99_ms": round(_percentile(seconds, 0.99) * 1000, 2) if seconds else None,
        "write_errors": stats.write_errors_total,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print a line of JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="storage URL (default: SQLite file in a temporary directory)")
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--max-rows", type=int, default=1000, help="batch.max_rows of the writer")
    parser.add_argument("--msg-keys", action="store_true", help="give every reading a msg_key (MQTT dedup)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        result = run(url, args.readings, args.endpoints, args.producers, args.max_rows, args.msg_keys)
    print(json.dumps(result))
    return 0 if result["stored"] == result["readings"] else 1


if __name__ == "__main__":
    sys.exit(main())
