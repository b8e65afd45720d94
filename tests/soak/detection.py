"""Detection of cut-off peers: no false `up`, detection within the bound, and each fault's latency.

A peer fault (`FaultRecord.peer`) must show on each endpoint that watches the
peer within that endpoint's bound (env.Target). The clock starts at the cut,
or later when the daemon only became ready, or the site was only re-enabled,
after it. Two invariants read the same samples: sent after the bound and
answered while the fault lasted, none may show `up` (API or metrics), and each
must show down/stale/faulty — `connecting` past the bound is a late detection
too. A `Detection` keeps, per fault and endpoint, the latency to the first
sample showing down and the states seen meanwhile, so a late one can be read
in the report without the run's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from .env import Target
from .faults import FaultRecord
from .runner import SoakRun
from .sampler import Sample
from .timeline import Timeline
from .verdict import Invariant

__all__ = ["SHOWN_DOWN", "Detection", "check_detection", "fault_bound", "peer_faults"]

SHOWN_DOWN = frozenset({"down", "stale", "faulty"})


@dataclass(frozen=True)
class Detection:
    """How long one fault took to show on one endpoint (None: it did not show while the fault lasted)."""

    fault: str
    kind: str
    endpoint: str
    start: float
    duration_s: float
    bound_s: float
    latency_s: float | None
    trace: str = ""  # the states the samples saw, from the cut to the first down (or the end of the window)


def peer_faults(run: SoakRun) -> list[tuple[FaultRecord, Target]]:
    """Every ended fault that cut a peer off, with each endpoint watching that peer."""
    pairs: list[tuple[FaultRecord, Target]] = []
    for f in run.log.faults:
        if f.peer is None or f.end is None:
            continue
        pairs.extend((f, t) for t in run.env.targets.values() if t.peer == f.peer)
    return pairs


def fault_bound(f: FaultRecord, t: Target) -> float:
    """The detection bound of endpoint `t` for fault `f` (killed peer: refused at once; silent: timeouts)."""
    return t.bound_gone_s if f.gone else t.bound_s


def check_detection(tl: Timeline, run: SoakRun) -> tuple[Invariant, Invariant, list[Detection]]:
    """(no_false_up, detected_within_bound, every fault's detection)."""
    false_up = Invariant("no_false_up", "no endpoint is `up` (API or metrics) while its peer has been unreachable "
                                        "longer than its detection bound")
    in_bound = Invariant("detected_within_bound", "while a peer stays unreachable, every sample sent later than the "
                                                  "endpoint's detection bound shows it down/stale/faulty (not up, "
                                                  "not connecting); one check per fault and endpoint")
    detections: list[Detection] = []
    for f, t in peer_faults(run):
        assert f.end is not None
        bound = fault_bound(f, t)
        late: list[tuple[float, Sample]] = []  # samples sent past the bound that did not show down
        checked = False
        for s in tl.valid_between(f.start, f.end):
            if s.t1 > f.end or tl.site_disabled(t.site, s.t0, s.t1):
                continue
            inc = tl.incs[s.incarnation]
            eff = max(f.start, inc.ready_at or 0.0, tl.enabled_since(t.site, s.t0))
            if s.t0 - eff <= bound:
                continue
            view = s.api.get(t.key)
            false_up.check(not s.shown_up(t.key),
                           f"{t.site}/{t.endpoint} up at +{s.t0 - eff:.1f}s of {f.kind} {f.target} "
                           f"(bound {bound:g}s; API {view.state if view else None}, metric up {s.metric_up.get(t.key)})")
            checked = True
            if view is None or view.state not in SHOWN_DOWN:
                late.append((s.t0 - eff, s))
        detection = _detection(tl, f, t, bound, _next_cut(run, f))
        detections.append(detection)
        if checked:
            text = None
            if late:
                at, first = late[0]
                text = (f"{t.site}/{t.endpoint}: {f.kind} {f.target} from {f.start:.3f} (held {f.end - f.start:.1f}s): "
                        f"{_state(first, t)} at +{at:.1f}s, {len(late)} samples past the {bound:g}s bound not down; "
                        f"seen: {detection.trace}")
            in_bound.check(not late, text)
    return false_up, in_bound, detections


def _state(s: Sample, t: Target) -> str:
    view = s.api.get(t.key)
    if view is None:
        return "absent"
    return f"{view.state} ({view.reason})" if view.reason else view.state


def _trace(samples: list[Sample], t: Target, start: float, limit: int = 8) -> str:
    """'+0.4 up (...), +6.6 connecting (...), +10.1 down (...)': the state changes the samples saw."""
    parts: list[str] = []
    last = None
    for s in samples:
        state = _state(s, t)
        if state != last:
            parts.append(f"+{s.t1 - start:.1f} {state[:100]}")
            last = state
    if len(parts) > limit:
        parts = [*parts[: limit - 1], "...", parts[-1]]
    return ", ".join(parts)


def _next_cut(run: SoakRun, f: FaultRecord) -> float:
    """When the next fault on the same peer began (+inf if none): what shows after it is not `f`'s doing."""
    return min((g.start for g in run.log.faults if g.peer == f.peer and g.start > f.start), default=float("inf"))


def _detection(tl: Timeline, f: FaultRecord, t: Target, bound: float, next_cut: float) -> Detection:
    """The first sample showing `f` on `t`: sent before the bound past the fault's end, and before the next
    fault on the same peer (a freeze too short to show must not be credited with the next kill's detection)."""
    assert f.end is not None
    latency = None
    until = min(f.end + bound, next_cut)
    inc = tl.live_incarnation(f.start, until)
    clean = inc is not None and not tl.site_disabled(t.site, f.start - 1.0, until)
    window = [s for s in tl.valid_between(f.start, until) if s.t1 < next_cut]
    seen = window
    if clean:
        for i, s in enumerate(window):
            view = s.api.get(t.key)
            if view is not None and view.state in SHOWN_DOWN:
                latency = s.t1 - f.start
                seen = window[: i + 1]
                break
    kind = f"{t.kind} ({'gone' if f.gone else 'silent'})"
    return Detection(f.kind, kind if clean else f"{kind} [restarted/toggled]", f"{t.site}/{t.endpoint}", f.start,
                     f.end - f.start, bound, latency, _trace(seen, t, f.start))
