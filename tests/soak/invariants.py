"""The invariants, checked over the samples, the fault log, the database and the daemon log.

Each `Invariant` counts its checks and lists its violations. Valid samples and
durable times are defined in `timeline`.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from .detection import SHOWN_DOWN, Detection, check_detection, fault_bound, peer_faults
from .env import Incarnation
from .logscan import LogLine
from .runner import SoakRun
from .sampler import Sample
from .timeline import Timeline, end_of
from .verdict import MAX_LISTED, Invariant

__all__ = ["Detection", "Invariant", "check_all"]

ALERTING = SHOWN_DOWN


def _transition(event: str) -> tuple[str, str] | None:
    if "->" not in event:
        return None
    old, _, new = event.partition("->")
    return old, new


def _incarnation_of(incs: list[Incarnation], t: float) -> int:
    spawned = [inc.spawned_at for inc in incs]
    return max(0, bisect.bisect_right(spawned, t) - 1)


def check_state_history(tl: Timeline, run: SoakRun) -> tuple[Invariant, Invariant]:
    """Stored transitions chain in order; every state the API showed was stored (when durable)."""
    assert run.facts is not None
    chain = Invariant("state_changes_in_order", "stored transition events chain per endpoint within an incarnation "
                                                "(each `a->b` is followed by `b->c`, times in order)")
    seen = Invariant("observed_states_stored", "every state change the sampler saw is in the event log "
                                               "(once that incarnation's queue was seen empty after it)")
    by_ep: dict[tuple[str, str], list[tuple[float, str, str]]] = defaultdict(list)
    for _id, time_, site, ep, event, _gen in run.facts.events:
        tr = _transition(event)
        if tr is not None:
            by_ep[(site, ep)].append((time_, *tr))
    for key, items in by_ep.items():
        for (ta, _, new_a), (tb, old_b, new_b) in zip(items, items[1:], strict=False):
            if _incarnation_of(tl.incs, ta) != _incarnation_of(tl.incs, tb):
                continue
            chain.check(new_a == old_b and tb >= ta - 0.001,
                        f"{key[0]}/{key[1]}: ...->{new_a} at {ta:.3f} then {old_b}->{new_b} at {tb:.3f}")
    for key in run.env.targets:
        prev: Sample | None = None
        for s in tl.valid:
            view = s.api.get(key)
            if view is None:
                continue
            before = prev.api.get(key) if prev is not None and prev.incarnation == s.incarnation else None
            before_t0 = prev.t0 if prev is not None else None
            prev = s
            if before is None or before.state == view.state:
                continue
            if (view.reason or "").startswith("no data within") or not tl.durable(s.incarnation, s.t1):
                continue  # a reader-side demotion, or possibly lost with a SIGKILL
            assert before_t0 is not None
            stored = any(new == view.state and before_t0 - 0.5 <= time_ <= s.t1 + 0.5 for time_, _, new in by_ep[key])
            seen.check(stored, f"{key[0]}/{key[1]}: {before.state} -> {view.state} seen at {s.t1:.3f}, no stored "
                               f"`->{view.state}` event near it")
    return chain, seen


def check_alerts(tl: Timeline, run: SoakRun) -> tuple[Invariant, Invariant]:
    """Every outage longer than its bound opened an alert; every alert of a recovered endpoint is resolved."""
    assert run.facts is not None
    opened = Invariant("outage_opened_alert", "every outage longer than the detection bound + 1 s opened "
                                              "a down/stale/faulty alert (alerts table)")
    resolved = Invariant("recovery_resolved_alert", "at the end (every endpoint up) no down/stale/faulty alert "
                                                    "of an endpoint is still active")
    alerts = defaultdict(list)
    for site, ep, cond, trig, res in run.facts.alerts:
        if cond in ALERTING:
            alerts[(site, ep)].append((cond, trig, res))
    for f, t in peer_faults(run):
        assert f.end is not None
        bound = fault_bound(f, t)
        detect_by = f.start + bound + 1.0
        if f.end - f.start <= bound + 1.0:
            continue
        inc = tl.live_incarnation(f.start, detect_by)
        if inc is None or tl.site_disabled(t.site, f.start - 1.0, detect_by) or not tl.durable(inc.index, detect_by):
            continue
        ok = any(trig <= detect_by and (res is None or res >= f.start) for _, trig, res in alerts[t.key])
        opened.check(ok, f"{t.site}/{t.endpoint}: {f.kind} {f.target} for {f.end - f.start:.1f}s from "
                         f"{f.start:.3f}: no alert active by +{bound + 1:g}s")
    for key, items in alerts.items():
        if key not in run.env.targets:
            continue
        for cond, trig, res in items:
            resolved.check(res is not None, f"{key[0]}/{key[1]}: {cond} alert opened at {trig:.3f} never resolved")
    return opened, resolved


def _baseline(tl: Timeline, run: SoakRun, inc: Incarnation) -> tuple[float, list[Sample]]:
    """(time, 3 samples) of an incarnation's resource baseline: warmed up, 3 samples in a row with all up."""
    assert inc.ready_at is not None
    window: list[Sample] = []
    for s in tl.valid:
        if s.incarnation != inc.index or s.t0 < inc.ready_at + run.cfg.warmup_s or s.rss_kb is None:
            continue
        quiet = all(s.api.get(k) is not None and s.api[k].state == "up" for k in run.env.targets)
        window = [*window, s] if quiet else []
        if len(window) == 3:
            return window[0].t0, window
    return 0.0, []


def _median(samples: list[Sample], attr: str) -> float:
    return float(statistics.median(getattr(s, attr) for s in samples))


def check_resources(tl: Timeline, run: SoakRun) -> tuple[Invariant, dict[str, object]]:
    """Threads, fds and RSS of the last incarnation at the end within 10 % of its post-warm-up baseline."""
    inv = Invariant("resources_return", "threads, open fds and RSS of the last incarnation at the end of the quiet "
                                        "period are within 10 % of that incarnation's post-warm-up baseline "
                                        "(first 3 samples in a row with every endpoint up, >= warm-up after ready; every "
                                        "incarnation's warm-up starts with 48 reads from 16 concurrent API clients)")
    info: dict[str, object] = {}
    inc = tl.incs[-1]
    at, base = _baseline(tl, run, inc)
    end = [s for s in tl.valid if s.incarnation == inc.index and s.t0 <= run.phases.quiet_end and s.rss_kb][-3:]
    info["baseline_at_s"] = round(at - run.phases.faults_start, 1) if at else None
    info["faults_after_baseline"] = sum(1 for f in run.log.faults if f.start > at) if at else 0
    if not base or len(end) < 3:
        inv.check(False, f"no baseline or end window for incarnation {inc.index}")
        return inv, info
    base_kinds, end_kinds = Counter(base[1].fd_kinds), Counter(end[-1].fd_kinds)
    info["fd_diff"] = {k: end_kinds[k] - base_kinds[k] for k in base_kinds | end_kinds
                       if end_kinds[k] != base_kinds[k]}
    for attr, label in (("threads", "threads"), ("fds", "open fds"), ("rss_kb", "RSS kB")):
        b, e = _median(base, attr), _median(end, attr)
        info[label] = (b, e)
        inv.check(abs(e - b) <= 0.10 * b, f"{label}: {b:g} after warm-up, {e:g} at the end ({(e - b) / b:+.1%})")
    return inv, info


def check_log_volume(run: SoakRun, lines: list[LogLine]) -> Invariant:
    """During every outage of 30 s or more, < 30 log lines per minute about the failing endpoint."""
    inv = Invariant("log_volume_bounded", "during each outage >= 30 s, the daemon logs < 30 lines/min "
                                          "about the failing endpoint")
    times = [ln.time for ln in lines]
    for f, t in peer_faults(run):
        assert f.end is not None
        minutes = (f.end - f.start) / 60.0
        if minutes < 0.5:
            continue
        lo, hi = bisect.bisect_left(times, f.start), bisect.bisect_right(times, f.end)
        count = sum(1 for ln in lines[lo:hi] if ln.path == t.path or any(m in ln.message for m in t.match))
        text = f"{t.site}/{t.endpoint}: {count} lines in {minutes * 60:.0f} s of {f.kind} ({count / minutes:.1f}/min)"
        inv.notes.append(text)
        inv.check(count / minutes < 30.0, text)
    return inv


def check_exits(tl: Timeline, run: SoakRun) -> tuple[Invariant, Invariant]:
    """The daemon ended only when the test ended it; the API answered every sample while it ran."""
    exits = Invariant("daemon_never_exits", "every incarnation ended by the test's SIGKILL (exit -9) or final "
                                            "SIGTERM (exit 0); none exited on its own")
    for inc in tl.incs:
        if inc.killed_at is not None:
            exits.check(inc.exit_code == -9, f"incarnation {inc.index}: SIGKILLed, exit code {inc.exit_code}")
        elif inc.stopped_at is not None:
            exits.check(inc.exit_code == 0, f"incarnation {inc.index}: SIGTERM, exit code {inc.exit_code}")
        else:
            exits.check(False, f"incarnation {inc.index} exited on its own with {inc.exit_code}")
    api = Invariant("api_answers", "while the daemon runs (ready, not being killed), /api/v1/sites and /metrics "
                                   "answer every sample")
    for s in tl.samples:
        if not 0 <= s.incarnation < len(tl.incs):
            continue
        inc = tl.incs[s.incarnation]
        if inc.ready_at is not None and inc.ready_at <= s.t0 and s.t1 < end_of(inc):
            api.check(s.ok, f"sample at {s.t0:.3f} (incarnation {inc.index}): {s.error}")
    return exits, api


def check_messages(run: SoakRun) -> tuple[Invariant, Invariant]:
    """Every acknowledged QoS 1 message stored exactly once; no malformed payload became a reading."""
    assert run.facts is not None
    once = Invariant("mqtt_exactly_once", "every QoS 1 message the publisher got a PUBACK for is stored exactly once")
    junk = Invariant("malformed_not_stored", "malformed payloads on processed topics never become readings "
                                             "(one check per payload sent)")
    if run.publisher is None:
        return once, junk
    counts = run.facts.seq_counts
    for seq in sorted(run.publisher.acked):
        n = counts.get(seq, 0)
        once.check(n == 1, f"message {seq}: stored {n} times")
    for what, _size in run.log.malformed:
        junk.check(run.facts.stray_readings == 0, f"{run.facts.stray_readings} readings of the MQTT endpoint are "
                                                  f"not publisher messages (after sending {what})")
    return once, junk


def check_inputs_and_commands(tl: Timeline, run: SoakRun, lines: list[LogLine]) -> list[Invariant]:
    """Bad HTTP input gets a 4xx; commands take effect at once; disabled and deleted sites stay quiet."""
    http = Invariant("bad_http_is_4xx", "every bad HTTP request answered with a 4xx (no 5xx, no dropped connection)")
    for c in run.log.http_checks:
        http.check(c.ok, f"{c.what}: {c.method} {c.path} -> {c.status or 'no answer'} {c.error}")
    commands = Invariant("commands_take_effect", "disable/enable answer 202 with the endpoints disabled at once; "
                                                 "an added site comes up, a deleted one is gone (404, not in the tree)")
    for f in run.log.faults:
        if f.kind in ("site_toggle", "site_add_delete"):
            commands.check(not f.problems, f"{f.kind} {f.target}: {'; '.join(f.problems)}")
    disabled = Invariant("disabled_means_disabled", "every sample between a disable's 202 and the enable request "
                                                    "shows each endpoint of that site `disabled`")
    for w in run.log.site_windows:
        if w.disabled_ack is None or w.enable_sent is None or w.disable_status != 202:
            continue
        for s in tl.valid_between(w.disabled_ack, w.enable_sent):
            if s.t1 > w.enable_sent:
                continue
            for key, view in s.api.items():
                if key[0] == w.site:
                    disabled.check(view.state == "disabled", f"{key[0]}/{key[1]} {view.state} at {s.t0:.3f} "
                                                             f"while its site was disabled")
    silent = Invariant("deleted_site_silent", "no log line from a deleted site's actors 1 s after its delete")
    for entry in run.log.added_sites:
        if entry["deleted_at"] is None:
            continue
        prefix = f"sites/{entry['name']}/"
        late = [ln for ln in lines if ln.path.startswith(prefix) and ln.time > entry["deleted_at"] + 1.0]
        silent.check(not late, f"{entry['name']}: {len(late)} lines after delete, first: "
                               f"{late[0].message[:120] if late else ''}")
    quiet = Invariant("stored_equals_api_when_quiet", "after the faults, every endpoint's stored state equals the "
                                                      "API state once the API state is 2 s old")
    quiet.checks, quiet.count = run.quiet.checks, len(run.quiet.violations)
    quiet.violations = run.quiet.violations[:MAX_LISTED]
    faults_ok = Invariant("faults_injected_cleanly", "every injector did what it meant to (a harness sanity check)")
    for f in run.log.faults:
        if f.kind not in ("site_toggle", "site_add_delete", "http_bad"):
            faults_ok.check(not f.problems, f"{f.kind} {f.target}: {'; '.join(f.problems)}")
    return [http, commands, disabled, silent, quiet, faults_ok]


def check_all(run: SoakRun, lines: list[LogLine]) -> tuple[list[Invariant], list[Detection], dict[str, object]]:
    """Every invariant, the detection latencies and the resource figures."""
    tl = Timeline(run)
    ran = Invariant("run_completed", "the run went through every phase and its database could be read")
    ran.check(run.error is None, f"the run broke: {(run.error or '').strip().splitlines()[-1:]}")
    ran.check(run.facts is not None, "the database could not be read after the run")
    if run.facts is None:
        return [ran], [], {}
    false_up, in_bound, detections = check_detection(tl, run)
    chain, seen = check_state_history(tl, run)
    opened, resolved = check_alerts(tl, run)
    resources, info = check_resources(tl, run)
    exits, api = check_exits(tl, run)
    once, junk = check_messages(run)
    invariants = [ran, once, false_up, in_bound, chain, seen, opened, resolved, resources, check_log_volume(run, lines), exits, api,
                  junk, *check_inputs_and_commands(tl, run, lines)]
    return invariants, detections, info


def log_path(run: SoakRun) -> Path:
    """Where the daemon's log of this run is."""
    return run.env.workdir / "fieldwatch.log"
