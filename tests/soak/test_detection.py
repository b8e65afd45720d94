"""The soak's detection accounting, on made-up samples (pure logic: no daemon, no peers).

The 20-minute soak of 2026-11-30 (seed 20261130) reported `mqtt (silent)` p99
10.0 s against a bound of 7 s. The kept samples showed a broker freeze held
3.9 s (too short to show: the link stays `up`, correctly) followed 9.8 s after
its start by a broker kill, whose `down` was credited to the freeze: the
detection window ran to the freeze's end + its bound, past the start of the
next fault on the same peer. These tests pin the attribution, and the
invariant that now fails a run when a detection is late.
"""

from __future__ import annotations

from pathlib import Path

from .detection import check_detection
from .env import Incarnation, SoakEnv, Target
from .faults import FaultLog, FaultRecord
from .runner import Phases, SoakConfig, SoakRun
from .sampler import EndpointView, Sample, Sampler
from .timeline import Timeline

KEY = ("iot", "broker")
BROKER = Target("iot", "broker", "mqtt", "broker", bound_s=7.0, bound_gone_s=1.0)


def _run(faults: list[FaultRecord], states: list[tuple[float, str]], slow: dict[float, float] | None = None) -> SoakRun:
    """A run with one ready daemon, the broker endpoint, `faults`, and a sample every 0.5 s from t=90 to 130
    showing the state of `states` ((from, state), in order); `slow` makes the sample sent at t answer later."""
    env = SoakEnv(Path("/nonexistent"))
    env.targets[KEY] = BROKER
    env.incarnations.append(Incarnation(0, 4242, spawned_at=0.0, ready_at=1.0))
    log = FaultLog()
    log.faults.extend(faults)
    sampler = Sampler(env)
    for i in range(81):
        t0 = 90.0 + 0.5 * i
        state = [s for since, s in states if since <= t0][-1]
        view = EndpointView(state, None if state == "up" else f"{state} (made up)", True, 1, 0, 0)
        t1 = t0 + (slow or {}).get(t0, 0.02)
        sampler.samples.append(Sample(t0, t1, 0, 4242, True, api={KEY: view}, metric_up={KEY: float(state == "up")}))
    cfg = SoakConfig(1, 60.0, "short", "sqlite", Path("/dev/null"), "")
    return SoakRun(cfg, env, log, sampler, Phases(started=0.0, faults_start=90.0))


def _freeze(start: float, held: float) -> FaultRecord:
    return FaultRecord("broker_freeze", "broker", "main", start, start + held, peer="broker")


def _kill(start: float, held: float) -> FaultRecord:
    return FaultRecord("broker_kill", "broker", "main", start, start + held, peer="broker", gone=True)


def test_a_short_freeze_is_not_credited_with_the_next_kills_detection() -> None:
    run = _run([_freeze(100.0, 3.9), _kill(109.8, 2.0)], [(0, "up"), (110.0, "down"), (112.5, "up")])
    false_up, in_bound, detections = check_detection(Timeline(run), run)
    freeze, kill = detections
    assert freeze.fault == "broker_freeze" and freeze.latency_s is None  # was 10.0 s before the fix
    assert kill.fault == "broker_kill" and kill.latency_s is not None and kill.latency_s <= kill.bound_s
    assert false_up.ok and in_bound.ok


def test_a_freeze_shown_down_in_time_passes() -> None:
    run = _run([_freeze(100.0, 12.0)], [(0, "up"), (106.2, "down"), (112.5, "up")])
    false_up, in_bound, (freeze,) = check_detection(Timeline(run), run)
    assert freeze.latency_s is not None and 6.2 <= freeze.latency_s <= 6.6
    assert in_bound.checks == 1 and in_bound.ok and false_up.ok


def test_connecting_past_the_bound_fails_the_run() -> None:
    """`connecting` is no false `up`, but a late detection all the same."""
    run = _run([_freeze(100.0, 12.0)], [(0, "up"), (101.0, "connecting"), (110.1, "down"), (113.0, "up")])
    false_up, in_bound, (freeze,) = check_detection(Timeline(run), run)
    assert false_up.ok
    assert not in_bound.ok and in_bound.count == 1
    assert "connecting" in in_bound.violations[0] and "+7.5s" in in_bound.violations[0]
    assert freeze.latency_s is not None and freeze.latency_s > freeze.bound_s
    assert "connecting" in freeze.trace and "down" in freeze.trace


def test_up_past_the_bound_fails_both() -> None:
    run = _run([_freeze(100.0, 12.0)], [(0, "up")])
    false_up, in_bound, (freeze,) = check_detection(Timeline(run), run)
    assert not false_up.ok and not in_bound.ok and freeze.latency_s is None


def test_a_slow_answer_is_not_a_late_detection() -> None:
    """Shown down from 106.2 s; the sample sent at 106.5 answers 1.5 s late: the latency it reports is the
    sampler's, and no sample sent after the bound showed anything but `down`."""
    run = _run([_freeze(100.0, 12.0)], [(0, "up"), (106.2, "down")], slow={106.5: 1.5})
    _, in_bound, (freeze,) = check_detection(Timeline(run), run)
    assert freeze.latency_s is not None and freeze.latency_s > freeze.bound_s
    assert in_bound.ok
