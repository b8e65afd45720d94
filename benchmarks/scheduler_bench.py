"""2,000 actors with 1 s timers: how many timing threads, how late the ticks are.

    .venv/bin/python benchmarks/scheduler_bench.py [--actors 2000] [--seconds 10]

Each actor is a real pykka actor with a drift-free `every(1 s)` timer from the
one shared Scheduler; a tick carries its due time and the actor records how late
it arrived in its mailbox handler. Prints a markdown row for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import pykka

from fieldwatch.actors.scheduler import Scheduler


class Ticker(pykka.ThreadingActor):
    def __init__(self, lateness: list[float], lock: threading.Lock) -> None:
        super().__init__()
        self.lateness = lateness
        self.lock = lock

    def on_receive(self, message: Any) -> None:
        due = message
        late = time.monotonic() - due
        with self.lock:
            self.lateness.append(late)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--actors", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    sched = Scheduler()
    sched.start()
    lateness: list[float] = []
    lock = threading.Lock()
    refs = [Ticker.start(lateness, lock) for _ in range(args.actors)]
    base_threads = threading.active_count()
    handles = []
    t0 = time.monotonic() + 1.0
    for i, ref in enumerate(refs):
        first = t0 + (i / args.actors) * args.interval  # staggered across the interval
        state = {"n": 0}

        def _tick(ref: Any = ref, first: float = first, state: dict[str, int] = state) -> None:
            due = first + state["n"] * args.interval
            state["n"] += 1
            ref.tell(due)

        handles.append(sched.every(args.interval, _tick, first_delay_s=first - time.monotonic()))
    end = time.monotonic() + args.seconds + 1.0
    while time.monotonic() < end:
        time.sleep(0.2)
    timing_threads = [t.name for t in threading.enumerate() if t.name.startswith("fieldwatch-scheduler")]
    for h in handles:
        h.cancel()
    sched.stop()
    pykka.ActorRegistry.stop_all()
    with lock:
        data = sorted(lateness)
    q = statistics.quantiles(data, n=100)
    print(f"actors={args.actors} interval={args.interval}s run={args.seconds}s ticks={len(data)}")
    print(f"threads: total {base_threads} (one per actor + main), timing threads {len(timing_threads)}")
    print(
        f"| {args.actors} actors, {args.interval:g} s timers | {len(timing_threads)} | {len(data)} "
        f"| {statistics.median(data)*1000:.1f} ms | {q[98]*1000:.1f} ms | {max(data)*1000:.1f} ms |"
    )


if __name__ == "__main__":
    main()
