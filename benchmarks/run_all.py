"""Run every benchmark once with the parameters recorded in RESULTS.md (`tox -e bench`).

    .venv/bin/python benchmarks/run_all.py [--quick]

Each benchmark prints its own table; copy what you want to keep into RESULTS.md
with the date and the machine's load. `--quick` uses small sizes (a smoke run).
Benchmarks that need root (ICMP raw sockets) or a local PostgreSQL say so and skip.
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

FULL = [
    ["scheduler_bench.py", "--actors", "2000", "--seconds", "10"],
    ["storage_bench.py", "--readings", "500000"],
    ["command_bench.py", "--toggles", "100", "--endpoints", "10"],
    ["http_bench.py"],
    ["icmp_bench.py", "--no-record"],
    ["icmp_daemon_bench.py", "--endpoints", "10000", "--interval", "10", "--rounds", "3"],
    ["opcua_bench.py", "--seconds", "5", "--endpoints", "50", "--servers", "5"],
    ["mqtt_bench.py", "--messages", "50000"],
    ["actor_runtime_bench.py"],
]

QUICK = [
    ["scheduler_bench.py", "--actors", "200", "--seconds", "3"],
    ["storage_bench.py", "--readings", "20000"],
    ["command_bench.py", "--toggles", "10", "--endpoints", "3"],
    ["icmp_daemon_bench.py", "--endpoints", "500", "--interval", "2", "--rounds", "2"],
]


def main() -> int:
    plan = QUICK if "--quick" in sys.argv[1:] else FULL
    failed = 0
    for args in plan:
        print(f"\n=== {' '.join(args)}", flush=True)
        rc = subprocess.call([sys.executable, os.path.join(HERE, args[0]), *args[1:]])
        if rc != 0:
            print(f"=== {args[0]} exited {rc}", flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
