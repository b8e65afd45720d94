"""The soak report (Markdown): what ran, what was injected, what was seen, and every invariant's count."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections import Counter, defaultdict
from typing import Any

from .invariants import Detection, Invariant
from .logscan import LogLine, top_messages
from .runner import SoakRun

__all__ = ["percentile", "render", "summary_line"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _mosquitto_version() -> str:
    try:
        out = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, timeout=5, check=False)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "mosquitto ?"


def _messages(run: SoakRun) -> list[str]:
    if run.publisher is None or run.facts is None:
        return ["MQTT was not part of this run."]
    acked = set(run.publisher.acked)
    counts = run.facts.seq_counts
    stored = sum(1 for s in acked if counts.get(s, 0) >= 1)
    dup = sum(1 for s in acked if counts.get(s, 0) > 1)
    missing = sum(1 for s in acked if counts.get(s, 0) == 0)
    extra = sum(1 for s in counts if s not in acked)
    sizes = sum(size for _, size in run.log.malformed)
    return [
        "| published | acknowledged (PUBACK) | stored | duplicated | missing | unacknowledged at end | stored, never acknowledged |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {run.publisher.published:,} | {len(acked):,} | {stored:,} | {dup:,} | {missing:,} | "
        f"{run.unacked_at_end:,} | {extra:,} |",
        "",
        f"Malformed payloads sent: {len(run.log.malformed)} ({sizes / 1e6:.1f} MB) on `soak/junk/seq`; "
        f"parse_error rows stored: {run.facts.parse_errors}; readings of the MQTT endpoint that are not "
        f"publisher messages: {run.facts.stray_readings}.",
    ]


def _detections(detections: list[Detection]) -> list[str]:
    by_kind: dict[str, list[Detection]] = defaultdict(list)
    for d in detections:
        by_kind[d.kind].append(d)
    rows = ["| endpoint kind (peer) | faults | longer than bound | detected | p50 | p99 | max | bound |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in sorted(by_kind):
        items = by_kind[kind]
        lat = [d.latency_s for d in items if d.latency_s is not None]
        longer = sum(1 for d in items if d.duration_s > d.bound_s)
        stats = (f"{percentile(lat, 50):.2f} s | {percentile(lat, 99):.2f} s | {max(lat):.2f} s"
                 if lat else "- | - | -")
        rows.append(f"| {kind} | {len(items)} | {longer} | {len(lat)} | {stats} | {items[0].bound_s:g} s |")
    rows.append("")
    rows.append("Latency = from the fault taking effect to the answer of the first sample showing down/stale/faulty "
                "(samples every 0.5 s, so up to ~0.5 s is sampling). Faults shorter than the bound may end before "
                "they show. `[restarted/toggled]`: the daemon was restarted or the site toggled meanwhile. "
                "`detected_within_bound` fails when a sample sent later than the bound, while the fault lasted, "
                "did not show the endpoint down.")
    slow = sorted((d for d in detections if d.latency_s is not None and d.latency_s > d.bound_s),
                  key=lambda d: -(d.latency_s or 0.0))
    if slow:
        rows += ["", f"Latencies above the bound ({len(slow)}; the sample answering last can be up to ~0.5 s late), "
                     "with the states the samples saw (seconds from the fault):", ""]
        rows += [f"- {d.latency_s:.2f} s, {d.endpoint}, {d.fault} held {d.duration_s:.1f} s: {d.trace}"
                 for d in slow[:15]]
    return rows


def _restarts(run: SoakRun) -> list[str]:
    last = next((s for s in reversed(run.sampler.samples) if s.ok and s.api), None)
    rows = [f"Daemon incarnations: {len(run.env.incarnations)} "
            f"({sum(1 for i in run.env.incarnations if i.killed_at)} SIGKILLed and restarted); "
            f"final exit code {run.final_exit}.", "",
            "| endpoint | generation | restarts | reconnects (last incarnation) |", "|---|---:|---:|---:|"]
    if last is not None:
        for key in sorted(run.env.targets):
            view = last.api.get(key)
            if view is not None:
                rows.append(f"| {key[0]}/{key[1]} | {view.generation} | {view.restarts} | {view.reconnects} |")
    restarted = [n for n in run.tree if n.get("restarts")]
    rows.append("")
    rows.append("Supervision tree at the end (`/api/v1/tree`): " + (
        ", ".join(f"`{n['path']}` {n['restarts']} restarts" for n in restarted) if restarted
        else "no actor restarted in the last incarnation."))
    return rows


def _resources(run: SoakRun, info: dict[str, Any]) -> list[str]:
    rows = ["| incarnation | samples | peak RSS | peak threads | peak fds |", "|---:|---:|---:|---:|---:|"]
    by_inc: dict[int, list[Any]] = defaultdict(list)
    for s in run.sampler.samples:
        if s.rss_kb is not None:
            by_inc[s.incarnation].append(s)
    for idx in sorted(by_inc):
        ss = by_inc[idx]
        rows.append(f"| {idx} | {len(ss)} | {max(s.rss_kb for s in ss) / 1024:.1f} MiB | "
                    f"{max(s.threads or 0 for s in ss)} | {max(s.fds or 0 for s in ss)} |")
    rows.append("")
    parts = [f"{k}: {v[0]:g} -> {v[1]:g}" for k, v in info.items() if isinstance(v, tuple)]
    rows.append(f"Last incarnation, baseline (median of the first 3 samples in a row >= {run.cfg.warmup_s:g} s after "
                f"ready with every endpoint up; taken at fault phase +{info.get('baseline_at_s')} s, "
                f"{info.get('faults_after_baseline')} faults after it) -> end of the quiet period "
                f"(median of its last 3 samples): " + ("; ".join(parts) or "n/a") + ". Open fds that differ "
                f"(end - baseline, by kind): {info.get('fd_diff') or 'none'}.")
    return rows


def _log(run: SoakRun, lines: list[LogLine], bad: int) -> list[str]:
    span = max(1.0, run.phases.drained - run.phases.started) / 60.0
    levels = Counter(ln.level for ln in lines)
    rows = [f"{len(lines):,} lines ({len(lines) / span:.1f}/min over the run; "
            + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())) + f"; {bad} unparsable). Most frequent:", ""]
    rows += [f"- {count} x `{text}`" for count, text in top_messages(lines)]
    return rows


def _long_outages(invariants: list[Invariant]) -> list[str]:
    notes = [n for i in invariants if i.name == "log_volume_bounded" for n in i.notes]
    return [f"- {n}" for n in notes] or ["No outage of 30 s or more in this run."]


def _faults(run: SoakRun) -> list[str]:
    counts: Counter[str] = Counter(f.kind for f in run.log.faults)
    seconds: dict[str, float] = defaultdict(float)
    for f in run.log.faults:
        seconds[f.kind] += (f.end or f.start) - f.start
    rows = ["| fault | count | total s |", "|---|---:|---:|"]
    rows += [f"| {k} | {counts[k]} | {seconds[k]:.0f} |" for k in sorted(counts)]
    statuses = Counter(c.status for c in run.log.http_checks)
    rows += ["", f"Bad HTTP requests: {len(run.log.http_checks)}, answers: "
             + ", ".join(f"{k or 'no answer'} x{v}" for k, v in sorted(statuses.items())) + "."]
    if run.skipped:
        rows += ["", f"Skipped steps ({len(run.skipped)}): " + "; ".join(run.skipped[:20])]
    return rows


def _timeline(run: SoakRun) -> list[str]:
    t0 = run.phases.faults_start
    rows = ["| at | fault | target | lane | held | detail |", "|---:|---|---|---|---:|---|"]
    for f in sorted(run.log.faults, key=lambda f: f.start):
        detail = {k: v for k, v in f.detail.items() if k != "hold_s"}
        held = f"{(f.end or f.start) - f.start:.1f}"
        note = (" PROBLEMS: " + "; ".join(f.problems)) if f.problems else ""
        rows.append(f"| {f.start - t0:.1f} | {f.kind} | {f.target} | {f.lane} | {held} | {detail or ''}{note} |")
    return rows


def _invariants(invariants: list[Invariant]) -> list[str]:
    rows = ["| invariant | checks | violations | result |", "|---|---:|---:|---|"]
    rows += [f"| `{i.name}`: {i.what} | {i.checks:,} | {i.count:,} | {'ok' if i.ok else '**FAIL**'} |"
             for i in invariants]
    for i in invariants:
        if not i.ok:
            rows += ["", f"**{i.name}** ({i.count} violations, first {len(i.violations)}):", ""]
            rows += [f"- {v}" for v in i.violations]
    unchecked = [i.name for i in invariants if i.checks == 0]
    if unchecked:
        rows += ["", "Never checked in this run (nothing applicable happened): " + ", ".join(unchecked) + "."]
    return rows


def summary_line(run: SoakRun, invariants: list[Invariant]) -> str:
    """One line: PASS/FAIL with the failing invariants."""
    failed = [i.name for i in invariants if not i.ok]
    return "PASS: every invariant held" if not failed else "FAIL: " + ", ".join(failed)


def render(run: SoakRun, invariants: list[Invariant], detections: list[Detection], info: dict[str, Any],
           lines: list[LogLine], bad_lines: int) -> str:
    """The whole report."""
    cfg, ph = run.cfg, run.phases
    out = [
        f"# Chaos soak report ({cfg.mode})",
        "",
        f"- **Result: {summary_line(run, invariants)}**",
        f"- Seed: `{cfg.seed}` (FIELDWATCH_SOAK_SEED); fault phase {cfg.fault_seconds:g} s planned, "
        f"{ph.faults_end - ph.faults_start:.0f} s actual; whole run {ph.drained - ph.started:.0f} s wall "
        f"(warm-up {ph.warm - ph.started:.0f} s, quiet until every endpoint up "
        f"{run.quiet.all_up_after_s or 0:.1f} s + {cfg.quiet_s:g} s)",
        f"- Command: `{cfg.command}`",
        f"- Recorded {_utc(ph.started)} on {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{_mosquitto_version()}, storage {cfg.backend}",
        f"- Peers: 2 OPC UA sim servers, {'1 Mosquitto + numbered QoS 1 publisher (20 msg/s)' if run.publisher else 'no MQTT'}, "
        f"ICMP to 127.0.0.1 and {len(run.env.namespaces)} namespace hosts ({', '.join(ns.peer_address for ns in run.env.namespaces.values()) or 'none'})",
        *[f"- Note: {n}" for n in run.notes],
        "",
        "## Invariants",
        "",
        *_invariants(invariants),
        "",
        "## Faults injected",
        "",
        *_faults(run),
        "",
        "## Detection latency",
        "",
        *_detections(detections),
        "",
        "## Messages",
        "",
        *_messages(run),
        "",
        "## Restarts",
        "",
        *_restarts(run),
        "",
        "## Resources",
        "",
        *_resources(run, info),
        "",
        "## Daemon log",
        "",
        *_log(run, lines, bad_lines),
        "",
        "Log lines about the failing endpoint during each outage of 30 s or more:",
        "",
        *_long_outages(invariants),
        "",
        "## Fault timeline (seconds from the start of the fault phase)",
        "",
        *_timeline(run),
        "",
    ]
    return "\n".join(out)
