"""ThreadingActor vs PooledActor at 2,000 / 10,000 / 20,000 actors.

    .venv/bin/python benchmarks/actor_runtime_bench.py [--sizes 2000,10000,20000] [--workers 8]

Each case (runtime, N) runs in a fresh subprocess so RSS and thread counts start
clean. Measured per case: spawn time, RSS delta (VmRSS) and OS threads after
spawn, sequential ask throughput (round-robin over the actors, one ask at a time),
tell throughput (every actor told 5 messages, time until all handled), and a
timer-like fan-out: every `--tick-s` one sender thread tells every actor a tick,
`--ticks` times; lateness = handling time minus the tick's due time.
A case running past `--case-budget-s` (90 s) is cut short: the phases not
finished are reported as "-".
Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import pykka

from fieldwatch.actors.pool import ActorPool, PooledActor

logger = logging.getLogger(__name__)

TELLS_PER_ACTOR = 5


def proc_status(field: str) -> int:
    """An integer field of /proc/self/status (VmRSS in kB, Threads)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Shared:
    """What the actors report into: a handled counter with a target, tick lateness."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.target = -1
        self.reached = threading.Event()
        self.lateness: list[float] = []

    def expect(self, n: int) -> None:
        with self.lock:
            self.count = 0
            self.target = n
            self.reached.clear()

    def handled(self) -> None:
        with self.lock:
            self.count += 1
            if self.count == self.target:
                self.reached.set()


class _Behaviour:
    """The same handler for both runtimes."""

    shared: Shared

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, float):  # a tick: its due time
            self.shared.lateness.append(time.monotonic() - message)
            self.shared.handled()
            return None
        if message == "tell":
            self.shared.handled()
            return None
        return message


class ThreadedBench(_Behaviour, pykka.ThreadingActor):
    def __init__(self, shared: Shared) -> None:
        super().__init__()
        self.shared = shared


class PooledBench(_Behaviour, PooledActor):
    def __init__(self, shared: Shared) -> None:
        super().__init__()
        self.shared = shared


class OverBudget(Exception):
    """The case ran past --case-budget-s: the rest is skipped."""


def run_case(runtime: str, n: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """One case in this process; fills `out` phase by phase (raises OverBudget to cut it short)."""
    deadline: float = time.monotonic() + args.case_budget_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OverBudget
        return remaining

    if runtime == "pooled":
        ActorPool.default(workers=args.workers)
    cls: Any = PooledBench if runtime == "pooled" else ThreadedBench
    shared = Shared()
    rss0, threads0 = proc_status("VmRSS"), proc_status("Threads")
    t0 = time.perf_counter()
    refs: list[pykka.ActorRef[Any]] = []
    for _ in range(n):
        refs.append(cls.start(shared))
        if len(refs) % 500 == 0:
            left()
    for ref in refs:  # everything is started once each answers (on_start done, thread running)
        ref.ask("ready", timeout=left())
    out["spawn_s"] = time.perf_counter() - t0
    out["rss_mb"] = (proc_status("VmRSS") - rss0) / 1024
    out["threads"] = proc_status("Threads") - threads0

    asks, t0 = 0, time.perf_counter()
    while asks < args.asks and time.perf_counter() - t0 < 5.0:
        refs[asks % n].ask(asks, timeout=left())
        asks += 1
    out["asks_per_s"] = asks / (time.perf_counter() - t0)

    shared.expect(n * TELLS_PER_ACTOR)
    t0 = time.perf_counter()
    for _ in range(TELLS_PER_ACTOR):
        for ref in refs:
            ref.tell("tell")
    if not shared.reached.wait(left()):
        raise OverBudget
    out["tells_per_s"] = n * TELLS_PER_ACTOR / (time.perf_counter() - t0)

    shared.expect(n * args.ticks)
    cpu0, wall0 = time.process_time(), time.monotonic()
    first = time.monotonic() + 0.5
    for k in range(args.ticks):
        due = first + k * args.tick_s
        time.sleep(max(0.0, due - time.monotonic()))
        for ref in refs:
            ref.tell(due)
        left()
    if not shared.reached.wait(left()):
        raise OverBudget
    out["tick_cpu_pct"] = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
    late = sorted(shared.lateness)
    out["late_p50_ms"] = 1000 * statistics.median(late)
    out["late_p99_ms"] = 1000 * late[int(0.99 * (len(late) - 1))]
    out["late_max_ms"] = 1000 * late[-1]

    t0 = time.perf_counter()
    pykka.ActorRegistry.stop_all(timeout=30)
    out["stop_s"] = time.perf_counter() - t0


def fmt(case: dict[str, Any]) -> str:
    """One markdown row."""

    def num(key: str, spec: str) -> str:
        return format(case[key], spec) if key in case else "-"

    label = "ThreadingActor" if case["runtime"] == "threading" else "PooledActor"
    note = case.get("note", "")
    return (
        f"| {label} | {case['n']:,} | {num('spawn_s', '.2f')} | {num('rss_mb', '.0f')} | {num('threads', 'd')} "
        f"| {num('asks_per_s', ',.0f')} | {num('tells_per_s', ',.0f')} | {num('late_p50_ms', '.1f')} "
        f"| {num('late_p99_ms', '.1f')} | {num('late_max_ms', '.0f')} | {num('tick_cpu_pct', '.0f')} "
        f"| {num('stop_s', '.2f')} | {note} |"
    )


HEADER = (
    "| runtime | actors | spawn s | RSS +MB | OS threads + | asks/s | tells/s | tick late p50 ms "
    "| p99 ms | max ms | CPU % during ticks | stop_all s | note |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,10000,20000")
    ap.add_argument("--runtimes", default="threading,pooled")
    ap.add_argument("--workers", type=int, default=8, help="pool size for PooledActor")
    ap.add_argument("--asks", type=int, default=5000, help="sequential asks (capped at 5 s)")
    ap.add_argument("--ticks", type=int, default=10)
    ap.add_argument("--tick-s", type=float, default=1.0)
    ap.add_argument("--case-budget-s", type=float, default=90.0, help="cut a case short after this")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # "runtime:n", run in a child process
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.case:
        runtime, n = args.case.split(":")
        out: dict[str, Any] = {"runtime": runtime, "n": int(n)}
        try:
            run_case(runtime, int(n), args, out)
        except (OverBudget, pykka.Timeout):
            out["note"] = f"cut after {args.case_budget_s:.0f} s budget"
        print(json.dumps(out), flush=True)
        os._exit(0)  # a cut case's actors (non-daemon threads) must not keep the child alive

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pool workers {args.workers}", flush=True)
    print(HEADER, flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        for runtime in args.runtimes.split(","):
            cmd = [sys.executable, __file__, "--case", f"{runtime}:{n}"] + sys.argv[1:]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                case = json.loads(proc.stdout.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError) as err:
                case = {"runtime": runtime, "n": n, "note": type(err).__name__}
            print(fmt(case), flush=True)


if __name__ == "__main__":
    main()
