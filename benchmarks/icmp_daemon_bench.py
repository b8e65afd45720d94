"""ICMP endpoints in the real daemon, watched as an operator would, with fping on the same hosts.

    .venv/bin/python benchmarks/icmp_daemon_bench.py --endpoints 10000 --interval 10 --rounds 3

A real Daemon in this process (SQLite in a temp dir, HTTP through waitress on 127.0.0.1)
with N ICMP endpoints on 127.x.y.z (loopback only), all under one site supervisor (health
checks on). Measures the time until every endpoint is `up`, then over `rounds` intervals:
- probe start lateness (first send vs the tick's due time, from the shared prober);
- whole-daemon CPU (this process: prober, actors, supervisor, writer, HTTP), RSS, threads,
  storage queue, and CPU per probe;
- `GET /api/v1/sites` latency and the worst age of `last_data_at` seen through it, from a
  poller subprocess (its own CPU is not the daemon's) every `--poll-s` seconds;
then stops the daemon and runs fping on the same hosts with the same rounds and period
(`fping -q -c ROUNDS -p INTERVAL_MS -i GAP_MS -t TIMEOUT_MS -f FILE`) and prints the
CPU-per-probe ratio. `--profile FILE` records the daemon with py-spy during the rounds
(`--gil`: only the thread holding the GIL) and prints the top frames.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers


def addresses(n: int) -> list[str]:
    """n distinct loopback addresses (127.0.0.0/8 only)."""
    return [f"127.{1 + i // 62500}.{(i // 250) % 250}.{1 + i % 250}" for i in range(n)]


def loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def thread_cpu(system_only: bool = False) -> dict[str, float]:
    """CPU seconds (user + system, or system only) of this process's threads, summed by name (numbers dropped)."""
    import re

    names = {t.native_id: re.sub(r"[-_]?\d+$", "", t.name) for t in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    out: collections.Counter[str] = collections.Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        ticks_used = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
        out[names.get(int(tid), "other")] += ticks_used / ticks
    return dict(out)


def _pct(data: list[float], p: float) -> float:
    if not data:
        return float("nan")
    return data[min(len(data) - 1, int(len(data) * p / 100))]


# -- the poller (a subprocess: an operator's browser or script) ---------------------------


def poll(url: str, duration_s: float, every_s: float, interval_s: float) -> dict[str, Any]:
    """GET /api/v1/sites every `every_s` for `duration_s`: latencies, worst last_data_at age."""
    latencies: list[float] = []
    worst_age = 0.0  # at the answer's arrival: an upper bound of the age at the board read
    worst_age_sent = 0.0  # at the request's start: a lower bound
    worst_late = 0  # endpoints older than interval + 1 s in one answer
    errors = 0
    ages_over = 0
    samples = 0
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        started = time.monotonic()
        sent_wall = time.time()
        try:
            with urllib.request.urlopen(f"{url}/api/v1/sites", timeout=60) as resp:
                body = resp.read()
        except OSError:
            errors += 1
            time.sleep(every_s)
            continue
        received_wall = time.time()  # strict: the age when the operator sees the answer
        latencies.append(time.monotonic() - started)
        samples += 1
        late = 0
        for site in json.loads(body)["items"]:
            for ep in site["endpoints"]:
                at = ep["last_data_at"]
                if at is None:
                    late += 1
                    continue
                stamp = _parse_rfc3339(at)
                age = received_wall - stamp
                worst_age = max(worst_age, age)
                worst_age_sent = max(worst_age_sent, sent_wall - stamp)
                if age > interval_s + 1.0:
                    late += 1
        worst_late = max(worst_late, late)
        ages_over += 1 if late else 0
        time.sleep(max(0.0, every_s - (time.monotonic() - started)))
    latencies.sort()
    return {
        "samples": samples,
        "errors": errors,
        "p50_ms": 1000 * _pct(latencies, 50),
        "p99_ms": 1000 * _pct(latencies, 99),
        "max_ms": 1000 * (latencies[-1] if latencies else float("nan")),
        "worst_age_s": worst_age,
        "worst_age_at_request_s": worst_age_sent,
        "worst_late_endpoints": worst_late,
        "samples_with_late": ages_over,
    }


def _parse_rfc3339(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- fping ------------------------------------------------------------------------------


def run_fping(hosts: list[str], interval_s: float, rounds: int, timeout_s: float) -> dict[str, Any]:
    """The same addresses, rounds and period through fping: CPU and replies."""
    import re

    fping = shutil.which("fping")
    if fping is None:
        return {"error": "fping not installed (apt-get install -y fping)"}
    gap_ms = max(0.1, min(1.0, round(0.8 * interval_s * 1000 / len(hosts), 1)))  # a round fits the period
    with tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False) as f:
        f.write("\n".join(hosts) + "\n")
        path = f.name
    argv = [
        fping,
        "-q",
        "-c",
        str(rounds),
        "-p",
        str(int(interval_s * 1000)),
        "-i",
        f"{gap_ms:g}",
        "-t",
        str(int(timeout_s * 1000)),
        "-f",
        path,
    ]
    try:
        before = cpu_s(resource.RUSAGE_CHILDREN)
        sys_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
        started = time.monotonic()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        wall = time.monotonic() - started
        used = cpu_s(resource.RUSAGE_CHILDREN) - before
        sys_used = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - sys_before
    finally:
        os.unlink(path)
    counts = re.findall(r"xmt/rcv/%loss = (\d+)/(\d+)/", proc.stderr)
    xmt = sum(int(a) for a, _ in counts)
    rcv = sum(int(b) for _, b in counts)
    return {
        "command": " ".join(["fping", *argv[1:-1], "HOSTS_FILE"]),
        "wall_s": wall,
        "cpu_s": used,
        "probes": xmt,
        "replies": rcv,
        "cpu_ms_per_probe": 1000 * used / max(1, xmt),
        "system_ms_per_probe": 1000 * sys_used / max(1, xmt),
    }


# -- py-spy -----------------------------------------------------------------------------


_PARTS = (  # (part of the daemon, a frame that marks it), first match wins
    ("HTTP (listing)", "App.__call__"),
    ("storage writer", "PersistenceActor."),
    ("supervisors (health checks)", "Supervisor."),
    ("ICMP prober + hub", "Prober."),
    ("pooled actors (ICMP actors)", "ActorPool._work"),
    ("daemon scheduler", "Scheduler._run"),
)


def add_history(db_path: pathlib.Path, hours: float, interval_s: float) -> str:
    """Store `hours` of past probe rows (rtt with packet loss, one per interval) for every series
    the daemon created, ending an hour ago, on a connection of our own, in
    transactions of ~200,000 rows. What a database that has run that long holds: each series'
    newest rows on a page of their own, so each new row dirties its own page (a fresh database
    packs the few rows of neighbouring series together). Rollup tables are not filled (no reader
    runs here)."""
    import sqlite3

    w = time.monotonic()
    con = sqlite3.connect(str(db_path), timeout=60, isolation_level=None)
    series = [int(r[0]) for r in con.execute("SELECT id FROM series WHERE aux_id IS NOT NULL ORDER BY id")]
    step = int(interval_s * 1000)
    per_series = int(hours * 3600 / interval_s)
    end = int(time.time() * 1000) - 3_600_000
    start = end - per_series * step
    rows = 0
    batch = max(1, 200_000 // max(1, per_series))
    for k in range(0, len(series), batch):
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT INTO reading_raw (series_id, t, seq, value, aux, lag, quality, text) "
            "VALUES (?, ?, 0, 0.05, 0.0, NULL, NULL, NULL)",
            ((sid, start + i * step) for sid in series[k : k + batch] for i in range(per_series)),
        )
        con.execute("COMMIT")
        rows += per_series * len(series[k : k + batch])
    size_mb = db_path.stat().st_size / 1e6
    con.close()
    return f"history: {rows} rows ({hours:g} h for {len(series)} series) added in {time.monotonic() - w:.1f} s; database {size_mb:.0f} MB"


def _part(frames: list[str]) -> str:
    for name, marker in _PARTS:
        if any(marker in f for f in frames):
            return name
    return "other"


def top_frames(raw_path: str, n: int = 12) -> str:
    """The top frames of a py-spy raw (collapsed) profile: by part, own samples and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw_path) as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            total += count
            frames = [
                f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
                for f in stack.split(";")[1:]
            ]  # [0] is the thread
            parts[_part(frames)] += count
            if frames:
                own[frames[-1]] += count
            for frame in set(frames):
                incl[frame] += count
    out = [f"samples: {total}", "by part of the daemon:"]
    out += [f"  {100 * c / max(1, total):5.1f} %  {name}" for name, c in parts.most_common()]
    out.append("own (leaf) samples:")
    out += [f"  {100 * c / max(1, total):5.1f} %  {f}" for f, c in own.most_common(n)]
    out.append("inclusive:")
    out += [f"  {100 * c / max(1, total):5.1f} %  {f}" for f, c in incl.most_common(2 * n)]
    return "\n".join(out)


class _GcTimes:
    """Counts and times the garbage collector's passes per generation (gc.callbacks)."""

    def __init__(self) -> None:
        import gc

        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.counts[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started

    def stop(self) -> str:
        import gc

        gc.callbacks.remove(self._callback)
        return ", ".join(f"{g}: {self.counts[g]}, {self.seconds[g]:.3f} s" for g in range(3))


def _restart_reasons(log_path: pathlib.Path) -> dict[str, int]:
    """Count the supervisors' restart reasons in the daemon's log: "<level of the path> <reason>"."""
    import re

    pattern = re.compile(r"(root[\w/.-]*): (?:generation \d+ (\w+):|exited: (\w+):|(reached max restart intensity))")
    counts: collections.Counter[str] = collections.Counter()
    try:
        with open(log_path, errors="replace") as handle:
            for line in handle:
                match = pattern.search(line)
                if match is None:
                    continue
                path = match.group(1)
                depth = {1: "root", 2: "root/<child>", 3: "root/sites/<site>"}.get(path.count("/") + 1, "endpoint")
                counts[f"{depth} {match.group(2) or match.group(3) or 'intensity exhausted'}"] += 1
    except OSError:
        return {}
    return dict(counts.most_common())


# -- the daemon run ---------------------------------------------------------------------


def main() -> None:  # noqa: PLR0915 - one linear measurement script
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=10000)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--poll-s", type=float, default=2.0, help="GET /api/v1/sites every this many seconds")
    ap.add_argument("--sites", type=int, default=1, help="spread the endpoints over this many sites")
    ap.add_argument("--no-fping", action="store_true")
    ap.add_argument("--switch-s", type=float, help="experiment: sys.setswitchinterval(this) before the daemon starts")
    ap.add_argument("--gc", help="experiment: 'freeze' (gc.freeze() once all are up) or gen-0,gen-1,gen-2 thresholds")
    ap.add_argument("--profile", help="py-spy raw output file (profile of the rounds)")
    ap.add_argument("--gil", action="store_true", help="py-spy --gil")
    ap.add_argument("--health-interval", type=float, help="experiment: the ICMP health-check interval (s)")
    ap.add_argument(
        "--history-hours",
        type=float,
        default=0.0,
        help="before the rounds, store this many hours of past probe rows per endpoint (a database that has run that long)",
    )
    ap.add_argument("--worker", nargs=4, metavar=("URL", "DURATION", "EVERY", "INTERVAL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, duration, every, interval = args.worker
        print(json.dumps(poll(url, float(duration), float(every), float(interval))))
        return

    from fieldwatch.actors.icmp import prober as prober_mod
    from fieldwatch.actors.icmp.schema import IcmpOptions
    from fieldwatch.config.model import EndpointConfig, SiteConfig
    from fieldwatch.policy import default_policy
    from fieldwatch.status import effective_state
    from tests.harness import Harness

    print(f"load average at start: {loadavg()}", flush=True)
    lateness = prober_mod.LatenessLog()
    prober_mod.lateness_log = lateness  # instrumentation only: each probe's lateness

    hosts = addresses(args.endpoints)
    eps = [
        EndpointConfig(f"h{i}", "icmp", IcmpOptions(a, interval_s=args.interval, timeout_s=1.0))
        for i, a in enumerate(hosts)
    ]
    h = Harness(pathlib.Path(tempfile.mkdtemp()))
    import logging

    if args.switch_s:
        sys.setswitchinterval(args.switch_s)
    rss0 = rss_mb()
    t0 = time.monotonic()
    per_site = -(-len(eps) // args.sites)
    sites = [
        SiteConfig("bench" if args.sites == 1 else f"bench{k}", endpoints=tuple(eps[k * per_site : (k + 1) * per_site]))
        for k in range(args.sites)
    ]
    policy = default_policy()
    if args.health_interval:  # an experiment: what the health checks cost
        icmp = {"health_check": {"interval_s": args.health_interval}}
        policy = dataclasses.replace(policy, kinds={**policy.kinds, "icmp": icmp})
    daemon = h.start(sites, http=True, policy=policy)
    logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic() - t0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ups = sum(1 for s in daemon.ledger.snapshot() if effective_state(s)[0] == "up")
        if ups == args.endpoints:
            break
        time.sleep(0.5)
    all_up = time.monotonic() - t0
    if args.gc:
        import gc

        if args.gc == "freeze":
            gc.collect()
            gc.freeze()
        else:
            gc.set_threshold(*(int(x) for x in args.gc.split(",")))
    history = add_history(h.tmp_path / "fieldwatch.db", args.history_hours, args.interval) if args.history_hours else ""
    # Two intervals to settle (start-up writes drained, every endpoint on its own phase).
    settle_end = time.monotonic() + 2 * args.interval
    while time.monotonic() < settle_end:
        time.sleep(0.2)
    # The first listing after start builds every endpoint's view (a one-time cost, reported on
    # its own): an operator's page has been open before the rounds start.
    w = time.monotonic()
    with urllib.request.urlopen(f"{daemon.url}/api/v1/sites", timeout=60) as resp:
        resp.read()
    first_listing_ms = 1000 * (time.monotonic() - w)
    duration = args.rounds * args.interval
    poller = subprocess.Popen(
        [sys.executable, __file__, "--worker", daemon.url, str(duration), str(args.poll_s), str(args.interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    spy = None
    if args.profile:
        argv = [
            shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy"),
            "record",
            *(["--native"] if os.environ.get("BENCH_NATIVE") else ["--nonblocking"]),  # native needs to pause
            "--threads",
            "-r",
            os.environ.get("BENCH_PYSPY_RATE", "50"),
            "-f",
            "raw",
            "-o",
            args.profile,
            "-d",
            str(int(duration)),
            "-p",
            str(os.getpid()),
        ]
        spy = subprocess.Popen(
            [*argv, "--gil"] if args.gil else argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    lateness.clear()
    gc_times = _GcTimes()
    threads0 = thread_cpu()
    sys0 = thread_cpu(system_only=True)
    stats0 = daemon.storage.stats()
    c0, w0 = cpu_s(), time.monotonic()
    peak_queue = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        peak_queue = max(peak_queue, daemon.storage.queue_depth)
        time.sleep(0.2)
    used = cpu_s() - c0
    wall = time.monotonic() - w0
    threads1 = thread_cpu()  # before the full collection below, which is not the daemon's
    sys1 = thread_cpu(system_only=True)
    gc_report = gc_times.stop()
    import gc

    full_started = time.perf_counter()
    gc.collect()
    full_gc_s = time.perf_counter() - full_started  # what a full pass costs now (all threads wait)
    stats1 = daemon.storage.stats()
    data = lateness.take()
    threads = threading.active_count()
    rss = rss_mb()
    polled = json.loads(poller.communicate(timeout=120)[0] or "{}")
    if spy is not None:
        spy.wait(timeout=120)
    not_up = sum(1 for s in daemon.ledger.snapshot() if effective_state(s)[0] != "up")
    restarts = sum(s.restarts for s in daemon.ledger.snapshot())
    sup_restarts = daemon.tree.supervisor_restarts()
    h.stop()
    load_end = loadavg()
    restart_reasons = _restart_reasons(h.tmp_path / "fieldwatch.log")
    fping = {} if args.no_fping else run_fping(hosts, args.interval, args.rounds, 1.0)
    data.sort()
    per_probe_ms = 1000 * used / max(1, len(data))
    print(
        f"endpoints={args.endpoints} sites={args.sites} interval={args.interval:g}s rounds={args.rounds} "
        f"probes={len(data)}"
    )
    if history:
        print(history)
    print(
        f"daemon start {started:.1f}s, all up after {all_up:.1f}s; endpoints not up at the end: {not_up}; "
        f"endpoint restarts: {restarts}; supervisor restarts: {sup_restarts}"
    )
    print(f"restart reasons (daemon log {h.tmp_path / 'fieldwatch.log'}): {json.dumps(restart_reasons)}")
    print(
        f"daemon CPU {used:.2f}s over {wall:.1f}s = {100 * used / wall:.0f} % of one core, "
        f"{per_probe_ms:.3f} ms per probe"
    )
    by_thread = collections.Counter({k: v - threads0.get(k, 0.0) for k, v in threads1.items()})
    print(
        "daemon CPU by thread during the rounds (ms per probe): "
        + ", ".join(
            f"{name} {1000 * secs / max(1, len(data)):.3f}" for name, secs in by_thread.most_common() if secs > 0
        )
    )
    by_thread_sys = collections.Counter({k: v - sys0.get(k, 0.0) for k, v in sys1.items()})
    print(
        "of which in the kernel (system time, ms per probe): "
        + ", ".join(
            f"{name} {1000 * by_thread_sys[name] / max(1, len(data)):.3f}"
            for name, secs in by_thread.most_common() if secs > 0
        )
    )
    commits = stats1.commit_seconds.count - stats0.commit_seconds.count
    written = stats1.writes_total - stats0.writes_total
    commit_s = stats1.commit_seconds.sum - stats0.commit_seconds.sum
    print(
        f"writer during the rounds: {commits} commits ({commits / wall:.1f}/s), {written} writes "
        f"({written / max(1, commits):.1f} a commit), {1000 * commit_s / max(1, len(data)):.3f} ms of transaction per probe"
    )
    print(f"garbage collections during the rounds (generation: count, seconds): {gc_report}")
    print(f"one full collection after the rounds: {1000 * full_gc_s:.0f} ms ({gc.get_freeze_count()} objects frozen)")
    print(f"first GET /api/v1/sites after start (before the rounds): {first_listing_ms:.0f} ms")
    print(f"GET /api/v1/sites every {args.poll_s:g}s: {json.dumps(polled)}")
    if fping:
        print(f"fping: {json.dumps(fping)}")
        if "cpu_ms_per_probe" in fping and fping["cpu_ms_per_probe"] > 0:
            print(f"CPU per probe, daemon / fping: {per_probe_ms / fping['cpu_ms_per_probe']:.2f}x")
    print(f"load average: start (above), end of rounds {load_end}")
    print(
        "| endpoints | start -> all up | CPU % | CPU ms/probe (fping, ratio) | RSS MB (+) | threads "
        "| lateness p50 / p99 / max | peak write queue | listing p50 / p99 / max "
        "| worst data age at answer (late eps) / at request |"
    )
    ratio = per_probe_ms / fping["cpu_ms_per_probe"] if fping.get("cpu_ms_per_probe") else float("nan")
    print(
        f"| {args.endpoints} @ {args.interval:g}s | {all_up:.1f} s | {100 * used / wall:.0f} % "
        f"| {per_probe_ms:.3f} ({fping.get('cpu_ms_per_probe', float('nan')):.3f}, {ratio:.1f}x) "
        f"| {rss:.0f} (+{rss - rss0:.0f}) | {threads} "
        f"| {1000 * _pct(data, 50):.1f} / {1000 * _pct(data, 99):.1f} / {1000 * (data[-1] if data else 0):.1f} ms "
        f"| {peak_queue} | {polled.get('p50_ms', 0):.0f} / {polled.get('p99_ms', 0):.0f} / "
        f"{polled.get('max_ms', 0):.0f} ms | {polled.get('worst_age_s', 0):.2f} s "
        f"({polled.get('worst_late_endpoints', '?')}) / {polled.get('worst_age_at_request_s', 0):.2f} s |"
    )
    if args.profile:
        print(top_frames(args.profile))


if __name__ == "__main__":
    main()
