"""One soak run: start the world, warm up, inject faults for a while, go quiet, drain, check, report.

The fault schedule comes from `random.Random(seed)`: the main lane runs one
fault at a time, kinds drawn as shuffled rounds of every available kind (so a
short run still covers each); the long lane cuts one peer off for 30 s or more
at offsets fixed up front (log volume during a long outage is checked on them).
A main-lane fault whose target the long lane holds at that moment falls back
to another target, or is skipped (recorded).
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .env import SoakEnv, mqtt_available
from .faults import FaultLog, FaultRecord, Injectors
from .publisher import SeqPublisher
from .sampler import Sampler, http_get
from .store import DbFacts, StoreReader

__all__ = ["Phases", "QuietCheck", "SoakConfig", "SoakRun", "run_soak"]


@dataclass(frozen=True)
class SoakConfig:
    """What to run: the seed, how long to inject faults, the backend, where the report goes."""

    seed: int
    fault_seconds: float
    mode: str  # "short" | "long"
    backend: str
    report_path: Path
    command: str
    warmup_s: float = 8.0  # after an incarnation is ready, before its resource baseline
    quiet_s: float = 6.0  # stable quiet period checked after the faults
    no_daemon_kill_last_s: float = 30.0  # keep the last incarnation long enough to measure
    long_outages: int = 1
    long_hold_s: tuple[float, float] = (30.0, 40.0)


@dataclass
class Phases:
    """When each phase began (Unix seconds)."""

    started: float = 0.0
    warm: float = 0.0
    faults_start: float = 0.0
    faults_end: float = 0.0
    quiet_end: float = 0.0
    drained: float = 0.0


@dataclass
class QuietCheck:
    """The stored state vs the API state while quiet: checks, and mismatches older than 2 s."""

    checks: int = 0
    violations: list[str] = field(default_factory=list)
    all_up_after_s: float | None = None


@dataclass
class SoakRun:
    """Everything a run produced, for the invariants and the report."""

    cfg: SoakConfig
    env: SoakEnv
    log: FaultLog
    sampler: Sampler
    phases: Phases
    publisher: SeqPublisher | None = None
    quiet: QuietCheck = field(default_factory=QuietCheck)
    facts: DbFacts | None = None
    unacked_at_end: int = 0
    skipped: list[str] = field(default_factory=list)
    final_exit: int | None = None
    tree: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the traceback when the run itself broke


def run_soak(cfg: SoakConfig, workdir: Path, say: Callable[[str], None] = print) -> SoakRun:
    """Run the whole soak; the caller checks invariants and writes the report (also on failure)."""
    env = SoakEnv(workdir, backend=cfg.backend, with_mqtt=mqtt_available(), log=say)
    run = SoakRun(cfg, env, FaultLog(), Sampler(env), Phases(started=time.time()))
    if not env.with_mqtt:
        run.notes.append("MQTT skipped: fieldwatch/actors/mqtt/actor.py does not exist in this tree")
    try:
        _run(run, say)
    except Exception:  # noqa: BLE001 - the run broke (a deadline, a peer that did not start): report what there is
        run.error = traceback.format_exc()
        say(f"soak: the run failed:\n{run.error}")
    finally:
        _finish(run)
    return run


def _run(run: SoakRun, say: Callable[[str], None]) -> None:
    env = run.env
    try:
        env.start()
        if env.netns_reason:
            run.notes.append(f"namespace ICMP targets skipped: {env.netns_reason}")
        if env.broker is not None:
            run.publisher = SeqPublisher(env.broker.port)
            run.publisher.start()
        run.sampler.start()
        _wait_all_up(run, 60.0, "warm-up")
        run.phases.warm = time.time()
        _wait_quiet_baseline(run)
        _inject(run)
        _quiet(run)
        _drain(run)
    finally:
        run.sampler.stop()


def _finish(run: SoakRun) -> None:
    """Stop the daemon cleanly, read the database, tear the world down (always)."""
    env = run.env
    try:
        if run.publisher is not None and not run.phases.drained:
            run.unacked_at_end = run.publisher.stop(timeout_s=2)
        run.final_exit = env.stop_daemon()
        if env.db_url:
            run.facts = StoreReader(env.db_url).facts()
        run.phases.drained = run.phases.drained or time.time()
    except Exception:  # noqa: BLE001 - reading the results failed: report it, still tear down
        run.error = (run.error or "") + traceback.format_exc()
    finally:
        env.close()


def _states(env: SoakEnv) -> dict[tuple[str, str], str]:
    assert env.daemon is not None
    status, body = http_get(env.daemon.port, "/api/v1/sites")
    if status != 200:
        return {}
    return {(s["name"], e["name"]): e["state"] for s in json.loads(body)["items"] for e in s["endpoints"]}


def _wait_all_up(run: SoakRun, timeout_s: float, what: str) -> float:
    """Poll until every monitored endpoint is up; seconds it took. AssertionError after the deadline."""
    started = time.monotonic()
    assert run.env.daemon is not None
    states = run.env.daemon.wait(
        lambda: (s := _states(run.env)) and all(s.get(k) == "up" for k in run.env.targets) and s,
        timeout_s, f"every endpoint up ({what})",
    )
    assert states
    return time.monotonic() - started


def _wait_quiet_baseline(run: SoakRun) -> None:
    """Let the first incarnation warm up (`warmup_s`) before the first fault: its resource baseline."""
    inc = run.env.current
    assert inc is not None and inc.ready_at is not None
    deadline = inc.ready_at + run.cfg.warmup_s + 2.5
    while time.time() < deadline:
        time.sleep(0.1)  # the warm-up itself: nothing to wait for but time


def _long_plan(cfg: SoakConfig, rng: random.Random, env: SoakEnv) -> list[tuple[float, str, float]]:
    """(offset, target, hold) of each long outage, inside the fault phase."""
    targets = ["opcua2"] + (["ns2"] if "ns2" in env.namespaces else []) + (["broker"] if env.broker else [])
    plan: list[tuple[float, str, float]] = []
    if cfg.long_outages <= 0:
        return plan
    slot = cfg.fault_seconds / cfg.long_outages
    for i in range(cfg.long_outages):
        hold = rng.uniform(*cfg.long_hold_s)
        latest = max(0.0, slot - hold - 8.0)
        plan.append((i * slot + rng.uniform(min(5.0, latest), latest), rng.choice(targets), hold))
    return plan


class _Busy:
    """Targets in use by a lane right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def take(self, name: str) -> bool:
        with self._lock:
            if name in self._held:
                return False
            self._held.add(name)
            return True

    def give(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)


def _inject(run: SoakRun) -> None:
    cfg, env = run.cfg, run.env
    master = random.Random(cfg.seed)
    main_rng, long_rng = random.Random(master.getrandbits(64)), random.Random(master.getrandbits(64))
    inj = Injectors(env, run.publisher, run.log, print)
    busy = _Busy()
    run.phases.faults_start = t0 = time.time()
    deadline = inj.deadline = t0 + cfg.fault_seconds
    plan = _long_plan(cfg, long_rng, env)
    long_thread = threading.Thread(target=_long_lane, args=(run, inj, busy, plan, long_rng, t0), daemon=True)
    long_thread.start()
    kinds = ["opcua_freeze", "opcua_kill", "site_toggle", "site_add_delete", "http_bad", "daemon_kill",
             "outage_across_restart"]
    if env.broker is not None:
        kinds += ["broker_kill", "broker_freeze", "mqtt_malformed"]
    if env.namespaces:
        kinds.append("link_flap")
    kinds.append("db_lock" if cfg.backend == "sqlite" else "pg_terminate")
    rounds: list[str] = []
    while time.time() < deadline - 1.0:
        if not rounds:
            rounds = list(kinds)
            main_rng.shuffle(rounds)
        kind = rounds.pop()
        _step(run, inj, busy, kind, main_rng, deadline)
        time.sleep(main_rng.uniform(0.3, 1.5))  # the gap between faults is part of the schedule
    long_thread.join(cfg.long_hold_s[1] + 60)
    ends = [f.end or f.start for f in run.log.faults]
    run.phases.faults_end = max([time.time(), *ends])


def _step(run: SoakRun, inj: Injectors, busy: _Busy, kind: str, rng: random.Random, deadline: float) -> None:
    env = run.env
    sites = ["plant1", "plant2", "net"] + (["iot"] if env.broker else [])
    options = {
        "opcua_freeze": ["opcua1", "opcua2"], "opcua_kill": ["opcua1", "opcua2"], "link_flap": ["ns1", "ns2"],
        "broker_kill": ["broker"], "broker_freeze": ["broker"], "mqtt_malformed": ["broker"],
        "site_toggle": sites,
        "outage_across_restart": ["opcua1", "opcua2"] + [n for n in ("ns1", "ns2") if n in env.namespaces]
        + (["broker"] if env.broker else []),
    }.get(kind, [kind])
    first = rng.choice(options)
    order = [first] + [o for o in options if o != first]
    if kind in ("daemon_kill", "outage_across_restart") and time.time() > deadline - run.cfg.no_daemon_kill_last_s:
        run.skipped.append(f"{time.time() - run.phases.faults_start:.0f}s daemon_kill: too close to the end")
        return
    target = next((o for o in order if busy.take(o)), None)
    if target is None:
        run.skipped.append(f"{time.time() - run.phases.faults_start:.0f}s {kind}: {first} held by the long lane")
        return
    try:
        action: dict[str, Callable[[], FaultRecord]] = {
            "opcua_freeze": lambda: inj.opcua_freeze(rng, target),
            "opcua_kill": lambda: inj.opcua_kill(rng, target),
            "link_flap": lambda: inj.link_flap(rng, target),
            "broker_kill": lambda: inj.broker_kill(rng),
            "broker_freeze": lambda: inj.broker_freeze(rng),
            "mqtt_malformed": lambda: inj.mqtt_malformed(rng),
            "site_toggle": lambda: inj.site_toggle(rng, target),
            "site_add_delete": lambda: inj.site_add_delete(rng),
            "http_bad": lambda: inj.http_bad(rng),
            "daemon_kill": lambda: inj.daemon_kill(rng),
            "outage_across_restart": lambda: inj.outage_across_restart(rng, target),
            "db_lock": lambda: inj.db_lock(rng),
            "pg_terminate": lambda: inj.pg_terminate(rng),
        }
        rec = action[kind]()
        print(f"soak: {rec.start - run.phases.faults_start:6.1f}s {kind} {target} {rec.detail} "
              f"{'PROBLEMS: ' + '; '.join(rec.problems) if rec.problems else ''}", flush=True)
    finally:
        busy.give(target)


def _long_lane(run: SoakRun, inj: Injectors, busy: _Busy, plan: list[tuple[float, str, float]],
               rng: random.Random, t0: float) -> None:
    for offset, target, hold in plan:
        while time.time() < t0 + offset:
            time.sleep(0.1)  # the schedule: wait for this outage's offset
        while not busy.take(target):
            time.sleep(0.05)  # the main lane is using the target: wait for its step to end
        try:
            if target == "broker":
                rec = inj.broker_kill(rng, lane="long", hold_s=hold)
            elif target.startswith("opcua"):
                rec = inj.opcua_kill(rng, target, lane="long", hold_s=hold)
            else:
                rec = inj.link_flap(rng, target, lane="long", hold_s=hold)
            rec.kind = f"{rec.kind}_long" if not rec.kind.endswith("_long") else rec.kind
            print(f"soak: {rec.start - t0:6.1f}s long outage {target} for {hold:.0f}s", flush=True)
        finally:
            busy.give(target)


def _quiet(run: SoakRun) -> None:
    """No faults: every endpoint comes back up; the stored state must follow the API state within 2 s."""
    env = run.env
    run.quiet.all_up_after_s = _wait_all_up(run, 60.0, "after the faults")
    reader = StoreReader(env.db_url)
    changed_at: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], str] = {}
    end = time.time() + run.cfg.quiet_s
    while time.time() < end:
        api = _states(env)
        now = time.time()
        stored = reader.endpoint_states()
        for key, state in api.items():
            if last.get(key) != state:
                last[key], changed_at[key] = state, now
            if now - changed_at[key] >= 2.0:
                run.quiet.checks += 1
                if stored.get(key) != state:
                    run.quiet.violations.append(
                        f"{key[0]}/{key[1]}: API {state} for {now - changed_at[key]:.1f}s, stored {stored.get(key)}")
        time.sleep(0.5)  # the quiet-period sampling rhythm
    run.phases.quiet_end = time.time()


def _drain(run: SoakRun) -> None:
    """Stop publishing (last PUBACKs), wait until every acknowledged message is stored, stop the daemon."""
    if run.publisher is not None:
        run.unacked_at_end = run.publisher.stop(timeout_s=30)
        acked = len(run.publisher.acked)
        reader = StoreReader(run.env.db_url)
        deadline = time.monotonic() + 30
        while reader.distinct_seq() < acked and time.monotonic() < deadline:
            time.sleep(0.2)  # polling the database for the last messages
    assert run.env.daemon is not None
    try:
        run.tree = json.loads(http_get(run.env.daemon.port, "/api/v1/tree")[1])["items"]
    except (OSError, ValueError, KeyError) as err:
        run.notes.append(f"could not read /api/v1/tree at the end: {err}")
    run.phases.drained = time.time()
