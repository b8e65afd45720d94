"""Benchmark of the shared ICMP prober against fping: N loopback hosts probed every interval.

Each host count runs in its own child process (so its peak RSS is its own): one
scheduling thread submits host i of round k with due = t0 + k * interval + i * interval / N
(staggered evenly, drift-free), the prober sends and receives; the child records CPU
time, RSS (peak and end), the lateness of each first send against its due time and
the ratio of replies. Then fping probes the same addresses with the same rounds and
period (`fping -q -c ROUNDS -p INTERVAL_MS -i 1 -t TIMEOUT_MS -f FILE`).

Only the prober is measured here; the per-endpoint actor overhead is measured separately.

    sudo .venv/bin/python benchmarks/icmp_bench.py                  # 2000 and 10000 hosts, 3 rounds
    sudo .venv/bin/python benchmarks/icmp_bench.py --hosts 500 --rounds 1 --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))

from fieldwatch.actors.icmp.prober import Prober, ProbeResult  # noqa: E402

_SECTION = "## ICMP prober"
_LEAD_S = 0.5  # how far ahead of its due time the scheduler hands a probe to the prober
_NOTES = [
    "Lateness: first send of each probe minus its due time (monotonic clock). CPU %: CPU",
    "seconds over wall seconds of the whole run, all threads, 100 = one core. The prober runs",
    "the probes as the ICMP actors do (one submit per probe, results by callback); actor",
    "overhead is not included. The machine is shared with other work while this runs.",
]


def addresses(n: int) -> list[str]:
    """N distinct loopback addresses 127.0.x.y (all answered by the kernel on `lo`)."""
    if n > 250 * 250:
        raise ValueError("at most 62,500 hosts in 127.0.0.0/16")
    return [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(n)]


def _status_kib(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:  # the process just exited
        pass
    return 0


def _rss_kib() -> int:
    return _status_kib("self", "VmRSS:")


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def run_prober(n: int, interval_s: float, rounds: int, timeout_s: float) -> dict[str, Any]:
    """Probe n loopback hosts `rounds` times through one Prober; return the measurements."""
    hosts = addresses(n)
    rss_start = _rss_kib()
    results: list[ProbeResult] = []
    done = threading.Event()
    total = n * rounds

    def collect(result: ProbeResult) -> None:  # as cheap as an actor's tell
        results.append(result)
        if len(results) >= total:
            done.set()

    prober = Prober()
    prober.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    t0 = wall0 + 1.0
    step = interval_s / n

    def schedule() -> None:
        for k in range(rounds):
            base = t0 + k * interval_s
            for i, address in enumerate(hosts):
                due = base + i * step
                wait = due - _LEAD_S - time.monotonic()
                if wait > 0.02:  # batch: hand over everything due within the lead time
                    time.sleep(wait)
                prober.submit(address, count=1, timeout_s=timeout_s, callback=collect, due=due)

    scheduler = threading.Thread(target=schedule, name="bench-scheduler")
    scheduler.start()
    finished = done.wait(timeout=rounds * interval_s + timeout_s + 30.0)
    scheduler.join()
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    sockets = prober.family_sockets
    prober.stop()
    lateness = sorted(r.lateness_s for r in results)
    sent = sum(r.sent for r in results)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "hosts": n,
        "rounds": rounds,
        "complete": finished,
        "probes": len(results),
        "sockets": sockets,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "cpu_pct": 100.0 * cpu_s / wall,
        "cpu_ms_per_1k": 1000.0 * cpu_s / max(1, sent) * 1000.0,
        "rss_start_mib": rss_start / 1024,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_end_mib": _rss_kib() / 1024,
        "late_p50_ms": 1000 * _pct(lateness, 50),
        "late_p99_ms": 1000 * _pct(lateness, 99),
        "late_max_ms": 1000 * (lateness[-1] if lateness else float("nan")),
        "reply_ratio": sum(r.received for r in results) / max(1, sent),
    }


def run_fping(n: int, interval_s: float, rounds: int, timeout_s: float) -> dict[str, Any]:
    """The same addresses, rounds and period through fping; wall time, CPU and replies."""
    fping = shutil.which("fping")
    if fping is None:
        return {"hosts": n, "error": "fping not installed (apt-get install -y fping)"}
    with tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False) as f:
        f.write("\n".join(addresses(n)) + "\n")
        path = f.name
    argv = [fping, "-q", "-c", str(rounds), "-p", str(int(interval_s * 1000)), "-i", "1",
            "-t", str(int(timeout_s * 1000)), "-f", path]
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, text=True)
            peak_kib = 0
            while proc.poll() is None:  # VmHWM of fping itself (ru_maxrss would count our fork)
                peak_kib = max(peak_kib, _status_kib(proc.pid, "VmHWM:"))
                time.sleep(0.2)
            wall = time.monotonic() - started
            err.seek(0)
            stderr = err.read()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(path)
    counts = re.findall(r"xmt/rcv/%loss = (\d+)/(\d+)/", stderr)
    xmt = sum(int(a) for a, _ in counts)
    rcv = sum(int(b) for _, b in counts)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "hosts": n,
        "command": " ".join(["fping", *argv[1:-1], "HOSTS_FILE"]),
        "wall_s": wall,
        "cpu_s": cpu_s,
        "cpu_pct": 100.0 * cpu_s / wall,
        "cpu_ms_per_1k": 1000.0 * cpu_s / max(1, xmt) * 1000.0,
        "rss_peak_mib": peak_kib / 1024,
        "reply_ratio": rcv / max(1, xmt),
    }


def _table(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    out = [
        "| tool | hosts | rounds | wall s | CPU s | CPU % (1 core) | CPU ms / 1k probes "
        "| RSS peak MiB | RSS end MiB | late p50 ms | late p99 ms | late max ms | replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p, f in rows:
        out.append(
            f"| prober | {p['hosts']} | {p['rounds']} | {p['wall_s']:.1f} | {p['cpu_s']:.2f} "
            f"| {p['cpu_pct']:.1f} | {p['cpu_ms_per_1k']:.1f} | {p['rss_peak_mib']:.0f} "
            f"| {p['rss_end_mib']:.0f} | {p['late_p50_ms']:.2f} | {p['late_p99_ms']:.2f} "
            f"| {p['late_max_ms']:.2f} | {p['reply_ratio']:.4f} |"
        )
        if "error" in f:
            out.append(f"| fping | {f['hosts']} | - | {f['error']} |")
        elif f:
            out.append(
                f"| fping | {f['hosts']} | {p['rounds']} | {f['wall_s']:.1f} | {f['cpu_s']:.2f} "
                f"| {f['cpu_pct']:.1f} | {f['cpu_ms_per_1k']:.1f} | {f['rss_peak_mib']:.0f} "
                f"| - | - | - | - | {f['reply_ratio']:.4f} |"
            )
    return "\n".join(out)


def _record(results_md: Path, command: str, table: str, fping_cmd: str, notes: list[str]) -> None:
    """Write the `## ICMP prober` section of RESULTS.md, leaving other sections alone."""
    body = [
        _SECTION,
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}.",
        "",
        f"Command: `{command}`",
        "",
        f"fping in the same run: `{fping_cmd}`",
        "",
        table,
        "",
        *notes,
        "",
    ]
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n\n"
    start = text.find(_SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body)
    else:
        nxt = text.find("\n## ", start + len(_SECTION))
        text = text[:start] + "\n".join(body) + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    results_md.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each host count in a child process; print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1.0, help="probe timeout, seconds")
    parser.add_argument("--no-fping", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--results", type=Path, default=_HERE / "RESULTS.md")
    parser.add_argument("--worker", choices=["prober", "fping"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run = run_prober if args.worker == "prober" else run_fping
        print(json.dumps(run(args.hosts[0], args.interval, args.rounds, args.timeout)))
        return 0

    def child(kind: str, n: int) -> dict[str, Any]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--hosts", str(n),
               "--interval", str(args.interval), "--rounds", str(args.rounds),
               "--timeout", str(args.timeout)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    rows = []
    for n in args.hosts:
        prober_row = child("prober", n)
        print(f"prober {n}: {json.dumps(prober_row)}", file=sys.stderr)
        fping_row = {} if args.no_fping else child("fping", n)
        print(f"fping {n}: {json.dumps(fping_row)}", file=sys.stderr)
        rows.append((prober_row, fping_row))
    table = _table(rows)
    print(table)
    if not args.no_record:
        fping_cmd = next((f["command"] for _, f in rows if "command" in f), "not run")
        python = os.path.relpath(sys.executable, _HERE.parent)
        python = python if not python.startswith("..") else "python"
        command = " ".join([python, "benchmarks/icmp_bench.py", *(argv or sys.argv[1:])])
        _record(args.results, command, table, fping_cmd, _NOTES)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
