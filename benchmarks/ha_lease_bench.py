"""Lease takeover times (SPEC 10 groundwork): SIGKILL or SIGSTOP of the owner of most sites.

Three lease managers in their own processes (tests/cluster/lease_worker.py) share 12
sites in a fresh schema of the PostgreSQL named by FIELDWATCH_TEST_PG. Per trial: wait
until placement settles, fault the owner of most sites, and measure the time from the
fault to the first claim of each of its sites (at a newer epoch) by another instance;
the trial's figure is its slowest site. After a SIGSTOP, the owner is woken (SIGCONT)
and must claim none of its old epochs, and every fencing check of them must refuse.
Every trial also checks that no site was ever claimed twice. This measures the leases
alone: no actors, no readings (the issue's full failover benchmark needs them).

    FIELDWATCH_TEST_PG=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/ha_lease_bench.py --trials 20 --ttl 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import uuid
from collections.abc import Callable
from typing import Any

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers

from tests.cluster.cluster_helpers import assert_never_owned_twice  # noqa: E402
from tests.cluster.lease_processes import Worker, all_samples, settled, takeover_times  # noqa: E402
from tests.waiting import wait_for  # noqa: E402


def _wait(predicate: Callable[[], Any], timeout: float) -> bool:
    """Whether `predicate` held within `timeout` (a miss is a figure here, not an error)."""
    try:
        wait_for(predicate, timeout, 0.02)
    except AssertionError:
        return False
    return True


def trial(dsn: str, sig: int, ttl: float) -> dict[str, Any]:
    """One fault; returns the slowest takeover and the safety counts."""
    schema = f"fw_ha_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE SCHEMA {schema}")
    workers = [Worker(dsn, schema, name, ttl=ttl) for name in ("a", "b", "c")]
    try:
        if not _wait(lambda: settled(workers), 6 * ttl):
            return {"error": "placement did not settle"}
        victim = max(workers, key=lambda w: len(w.owned()))
        lost = victim.owned()
        survivors = [w for w in workers if w is not victim]
        fault = victim.signal(sig)
        done = _wait(lambda: len(takeover_times(survivors, lost, fault)) == len(lost), ttl + 10)
        times = takeover_times(survivors, lost, fault)
        result: dict[str, Any] = {"takeover_s": max(times.values()) if done else None,
                                  "sites": len(lost), "stale_claims": 0, "fencing_checks": 0,
                                  "fencing_passed": 0}
        if sig == signal.SIGSTOP:
            woke = victim.signal(signal.SIGCONT)
            old = set(lost.items())
            _wait(lambda: {(s, e) for t, s, e, f in list(victim.fenced) if t > woke} >= old, 10)
            result["stale_claims"] = sum(1 for s in list(victim.samples) if s.t > woke and old & set(s.owned.items()))
            result["fencing_checks"] = sum(1 for t, s, e, f in list(victim.fenced) if t > woke and (s, e) in old)
            result["fencing_passed"] = sum(1 for t, s, e, f in list(victim.fenced)
                                           if t > woke and (s, e) in old and f is False)
        try:
            assert_never_owned_twice(all_samples(workers))
            result["owned_twice"] = 0
        except AssertionError:
            result["owned_twice"] = 1
        return result
    finally:
        for worker in workers:
            worker.kill()
        admin.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=5.0)
    args = parser.parse_args()
    dsn = os.environ.get("FIELDWATCH_TEST_PG")
    if not dsn:
        sys.exit("FIELDWATCH_TEST_PG is not set")
    summary: dict[str, Any] = {"ttl_s": args.ttl, "trials": args.trials}
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        results = [trial(dsn, sig, args.ttl) for _ in range(args.trials)]
        took = [r["takeover_s"] for r in results if r.get("takeover_s") is not None]
        summary[signal.Signals(sig).name] = {
            "p50_s": round(statistics.median(took), 2) if took else None,
            "p99_s": round(_pct(took, 0.99), 2) if took else None,
            "max_s": round(max(took), 2) if took else None,
            "completed": len(took),
            "failed": [r for r in results if r.get("takeover_s") is None],
            "stale_claims": sum(r.get("stale_claims", 0) for r in results),
            "fencing_checks": sum(r.get("fencing_checks", 0) for r in results),
            "fencing_passed": sum(r.get("fencing_passed", 0) for r in results),
            "owned_twice": sum(r.get("owned_twice", 0) for r in results),
        }
        print(json.dumps({signal.Signals(sig).name: summary[signal.Signals(sig).name]}), flush=True)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
