"""A lease manager in its own process, for the cluster tests (not a test module).

Usage: python lease_worker.py DSN SCHEMA NAME TTL CLOCK_OFFSET_S SITE,SITE,...

Prints one JSON line every 20 ms: {"t": monotonic, "owned": {site: epoch}}, and every
200 ms {"t": ..., "fenced": [[site, epoch, bool], ...]} for every lease it ever held,
checked with `fenced()` on its own connection. CLOCK_MONOTONIC is machine-wide, so the
test compares these times across processes. CLOCK_OFFSET_S shifts this process's wall
clock (time.time and the manager's wall_clock): expiry must not depend on it.
"""

from __future__ import annotations

import json
import sys
import time

import psycopg2

from fieldwatch.cluster import LeaseManager, fenced


def main(argv: list[str]) -> None:
    dsn, schema, name, ttl, offset, sites = argv
    real_time = time.time
    time.time = lambda: real_time() + float(offset)  # this instance's clock is off
    held: dict[tuple[str, int], None] = {}
    manager = LeaseManager(dsn, name, float(ttl), schema=schema,
                           on_acquired=lambda site, epoch: held.setdefault((site, epoch)),
                           wall_clock=time.time)
    manager.start()
    manager.declare_sites(sites.split(","))
    checker = psycopg2.connect(dsn, options=f"-c search_path={schema} -c statement_timeout=1000",
                               application_name=f"checker:{name}@{schema}")
    checker.autocommit = True
    next_check = 0.0
    while True:
        t = time.monotonic()
        print(json.dumps({"t": t, "owned": manager.owned()}), flush=True)
        if t >= next_check:
            next_check = t + 0.2
            results = []
            for site, epoch in list(held):
                try:
                    with checker.cursor() as cur:
                        results.append([site, epoch, fenced(cur, site, epoch)])
                except psycopg2.Error:
                    results.append([site, epoch, None])
            print(json.dumps({"t": t, "fenced": results}), flush=True)
        time.sleep(0.02)  # the sampling period of this reporter


if __name__ == "__main__":
    main(sys.argv[1:])
