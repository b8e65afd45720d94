"""The shared ICMP prober alone: CPU of its sender and receiver threads per probe.

    .venv/bin/python benchmarks/icmp_prober_bench.py --endpoints 5000 --interval 5 --rounds 2

N schedules on 127.x.y.z (one echo request each, every `interval` seconds, phases spread
over the interval as the ICMP actors spread them), a sink that only counts; after one
warm-up interval, measures `rounds` intervals: CPU of the two prober threads per probe,
probes delivered, replies received, lateness. A quick loop for work on prober.py / wire.py
(icmp_daemon_bench.py measures the whole daemon).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fieldwatch.actors.icmp import prober as prober_module  # noqa: E402
from fieldwatch.actors.icmp.probes import LatenessLog  # noqa: E402


def addresses(n: int) -> list[str]:
    """n distinct loopback addresses (127.0.0.0/8 only)."""
    return [f"127.{1 + i // 62500}.{(i // 250) % 250}.{1 + i % 250}" for i in range(n)]


def thread_cpu() -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of this process's threads by name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[float, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        user, system = out.get(name, (0.0, 0.0))
        out[name] = (user + int(fields[11]) / ticks, system + int(fields[12]) / ticks)
    return out


class Counter:
    def __init__(self) -> None:
        self.probes = 0
        self.received = 0
        self.calls = 0

    def __call__(self, batch: list[tuple[Any, Any]]) -> None:
        self.calls += 1
        self.probes += len(batch)
        self.received += sum(result.received for _, result in batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=5000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--perf", action="store_true", help="also CPU time and context switches by perf stat")
    args = ap.parse_args()
    with open("/proc/loadavg") as handle:
        print("load average at start:", " ".join(handle.read().split()[:3]))
    log = LatenessLog()
    prober_module.lateness_log = log
    prober = prober_module.Prober()
    prober.start()
    sink = Counter()
    schedules = []
    for i, address in enumerate(addresses(args.endpoints)):
        phase = (i * 0.6180339887498949) % 1.0 * args.interval
        schedules.append(prober.schedule(address, count=1, timeout_s=1.0, period_s=args.interval,
                                         sink=sink, token=i, phase_s=phase))
    time.sleep(args.interval + 1.0)
    before, probes0, received0, calls0 = thread_cpu(), sink.probes, sink.received, sink.calls
    log.clear()
    perf = None
    if args.perf:
        tids = ",".join(str(t.native_id) for t in threading.enumerate() if t.name.startswith("fieldwatch-icmp"))
        perf = subprocess.Popen(["perf", "stat", "-x,", "--per-thread", "-e", "task-clock,cs",
                                 "-t", tids, "--", "sleep", str(args.interval * args.rounds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(args.interval * args.rounds)
    after, probes, received, calls = thread_cpu(), sink.probes - probes0, sink.received - received0, sink.calls - calls0
    lateness = sorted(log.take())
    for schedule in schedules:
        schedule.cancel()
    prober.stop()
    print(f"privileged={prober.privileged} probes={probes} received={received} sink calls={calls}"
          f" ({probes / max(calls, 1):.1f} a call)")
    if lateness:
        print(f"lateness p50 {lateness[len(lateness) // 2] * 1e3:.1f} ms,"
              f" p99 {lateness[int(len(lateness) * 0.99)] * 1e3:.1f} ms, max {lateness[-1] * 1e3:.1f} ms")
    total = 0.0
    for name in ("fieldwatch-icmp-sender", "fieldwatch-icmp-receiver"):
        user = after.get(name, (0.0, 0.0))[0] - before.get(name, (0.0, 0.0))[0]
        system = after.get(name, (0.0, 0.0))[1] - before.get(name, (0.0, 0.0))[1]
        spent = user + system
        total += spent
        print(f"{name}: {spent:.2f} s, {spent / max(probes, 1) * 1e3:.4f} ms per probe"
              f" (user {user / max(probes, 1) * 1e3:.4f}, system {system / max(probes, 1) * 1e3:.4f})")
    print(f"sender + receiver: {total / max(probes, 1) * 1e3:.4f} ms per probe")
    if perf is not None:
        for line in perf.communicate()[1].splitlines():
            fields = line.split(",")
            if len(fields) > 3 and fields[1].replace(".", "").isdigit():
                print(f"perf {fields[0]} {fields[3]}: {float(fields[1]) / max(probes, 1):.3f} per probe")
    with open("/proc/loadavg") as handle:
        print("load average at end:", " ".join(handle.read().split()[:3]))


if __name__ == "__main__":
    main()
