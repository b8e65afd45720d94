"""Supervisor behaviour, modelled on Erlang/OTP's supervisor_SUITE scenarios."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pykka
import pytest

from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.actors.supervisor import (
    AddChild,
    ChildSpec,
    RemoveChild,
    RestartChild,
    Supervisor,
    SupervisorOptions,
    WhichChildren,
    backoff_delay,
    supervisor_spec,
)
from fieldwatch.actors.tree import TreeView
from fieldwatch.policy import Backoff, ChildPolicy, HealthCheck, Intensity
from tests.actors.sup_helpers import FAST_BACKOFF, Crash, ExitNormally, Hang, Ping, Recorder, SetHealthy, spec
from tests.waiting import wait_for


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


class Exhausted:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def __call__(self, reason: str) -> None:
        self.reason = reason
        self.event.set()


def start_sup(
    scheduler: Scheduler,
    specs: list[ChildSpec],
    *,
    strategy: str = "one_for_one",
    max_restarts: int = 10,
    within_s: float = 60,
    tree: TreeView | None = None,
    on_exhausted: Exhausted | None = None,
) -> pykka.ActorRef[Any]:
    ctx = ChildContext("root", "root", 1, 0, None, scheduler)
    options = SupervisorOptions(strategy, Intensity(max_restarts, within_s), tree, on_exhausted)
    return Supervisor.start(ctx, options, specs)


def children(sup: pykka.ActorRef[Any]) -> list[tuple[str, int, bool]]:
    return sup.ask(WhichChildren(), timeout=5)




def child_ref(rec: Recorder, child_id: str, generation: int) -> pykka.ActorRef[Any]:
    """The live actor of a child instance, as recorded when it started."""
    assert rec.wait_for(lambda ev: (child_id, generation) in rec.refs)
    return rec.refs[(child_id, generation)]


def test_children_start_in_order_and_stop_in_reverse(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("a", rec), spec("b", rec), spec("c", rec)])
    assert rec.wait_for(lambda ev: len([e for e in ev if e[0] == "start"]) == 3)
    assert rec.sequence("start") == ["a", "b", "c"]
    sup.stop(timeout=5)
    assert rec.sequence("stop") == ["c", "b", "a"]


def test_one_for_one_restarts_only_the_failed_child(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("a", rec), spec("b", rec), spec("c", rec)])
    assert rec.wait_for(lambda ev: len(ev) == 3)
    rec.clear()
    child_ref(rec, "b", 1).tell(Crash())
    assert rec.wait_for(lambda ev: ("start", "b", 2) in ev)
    assert rec.sequence("start") == ["b"]
    assert rec.sequence("stop") == ["b"]  # its own cleanup ran
    assert [(c, g) for c, g, _ in children(sup)] == [("a", 1), ("b", 2), ("c", 1)]


def test_one_for_all_stops_siblings_in_reverse_and_restarts_in_order(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("a", rec), spec("b", rec), spec("c", rec)], strategy="one_for_all")
    assert rec.wait_for(lambda ev: len(ev) == 3)
    rec.clear()
    child_ref(rec, "b", 1).tell(Crash())
    assert rec.wait_for(lambda ev: len([e for e in ev if e[0] == "start"]) == 3)
    assert rec.sequence("stop") == ["b", "c", "a"]  # b's own cleanup, then c, a in reverse order
    assert rec.sequence("start") == ["a", "b", "c"]
    assert [g for _, g, _ in children(sup)] == [2, 2, 2]


def test_rest_for_one_restarts_the_failed_child_and_those_after_it(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(
        scheduler, [spec("a", rec), spec("b", rec), spec("c", rec), spec("d", rec)], strategy="rest_for_one"
    )
    assert rec.wait_for(lambda ev: len(ev) == 4)
    rec.clear()
    child_ref(rec, "b", 1).tell(Crash())
    assert rec.wait_for(lambda ev: len([e for e in ev if e[0] == "start"]) == 3)
    assert rec.sequence("stop") == ["b", "d", "c"]
    assert rec.sequence("start") == ["b", "c", "d"]
    assert [(c, g) for c, g, _ in children(sup)] == [("a", 1), ("b", 2), ("c", 2), ("d", 2)]


def test_group_restart_counts_once_for_intensity(scheduler: Scheduler, rec: Recorder) -> None:
    exhausted = Exhausted()
    sup = start_sup(
        scheduler, [spec("a", rec), spec("b", rec), spec("c", rec)], strategy="one_for_all",
        max_restarts=1, on_exhausted=exhausted,
    )
    assert rec.wait_for(lambda ev: len(ev) == 3)
    child_ref(rec, "a", 1).tell(Crash())
    assert rec.wait_for(lambda ev: ("start", "c", 2) in ev)
    assert not exhausted.event.is_set()
    assert sup.is_alive()


def test_sliding_intensity_window_escalates_and_stops_children_in_reverse(scheduler: Scheduler, rec: Recorder) -> None:
    exhausted = Exhausted()
    sup = start_sup(scheduler, [spec("a", rec), spec("b", rec)], max_restarts=3, within_s=60, on_exhausted=exhausted)
    assert rec.wait_for(lambda ev: len(ev) == 2)
    for generation in range(1, 4):  # three restarts: allowed
        child_ref(rec, "b", generation).tell(Crash())
        assert rec.wait_for(lambda ev, g=generation: ("start", "b", g + 1) in ev)
    assert not exhausted.event.is_set()
    rec.clear()
    child_ref(rec, "b", 4).tell(Crash())  # the fourth within the window: too many
    assert exhausted.event.wait(5)
    assert "max restart intensity" in exhausted.reason
    assert wait_for(lambda: not sup.is_alive())
    assert rec.sequence("stop") == ["b", "a"]  # the crashed b's own cleanup, then a (reverse order)


def test_sliding_window_forgets_old_restarts(scheduler: Scheduler, rec: Recorder) -> None:
    exhausted = Exhausted()
    sup = start_sup(scheduler, [spec("a", rec)], max_restarts=2, within_s=0.5, on_exhausted=exhausted)
    assert rec.wait_for(lambda ev: len(ev) == 1)
    generation = 1
    for _ in range(3):  # two restarts, then wait for the window to slide, twice more...
        for _ in range(2):
            child_ref(rec, "a", generation).tell(Crash())
            generation += 1
            assert rec.wait_for(lambda ev, g=generation: ("start", "a", g) in ev)
        window_end = time.monotonic() + 0.6
        assert wait_for(lambda end=window_end: time.monotonic() >= end, timeout=2)
    assert not exhausted.event.is_set()
    assert sup.is_alive()


def test_escalation_through_a_two_level_tree(scheduler: Scheduler, rec: Recorder) -> None:
    tree = TreeView()
    inner = SupervisorOptions("one_for_one", Intensity(1, 60), tree)
    mid = supervisor_spec("mid", inner, lambda: [spec("w", rec)], policy=ChildPolicy(backoff=FAST_BACKOFF))
    exhausted = Exhausted()
    root = start_sup(scheduler, [spec("x", rec), mid], max_restarts=5, tree=tree, on_exhausted=exhausted)
    assert rec.wait_for(lambda ev: ("start", "w", 1) in ev and ("start", "x", 1) in ev)
    child_ref(rec, "w", 1).tell(Crash())  # mid restarts w: one restart, within its intensity
    assert rec.wait_for(lambda ev: ("start", "w", 2) in ev)
    child_ref(rec, "w", 2).tell(Crash())  # second: mid gives up and fails to root
    # root restarts mid (a new mid whose fresh child counter starts w at generation 1 again)
    assert rec.wait_for(lambda ev: ev.count(("start", "w", 1)) == 2, timeout=5)
    assert [(c, g) for c, g, _ in children(root)] == [("x", 1), ("mid", 2)]
    assert rec.count("start", "x") == 1  # the sibling was not touched
    assert not exhausted.event.is_set()
    assert tree.supervisor_restarts() == {"root/mid": 1, "root": 1}


def test_transient_child_restarted_only_after_abnormal_exit(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("t", rec, restart="transient"), spec("p", rec)])
    assert rec.wait_for(lambda ev: len(ev) == 2)
    child_ref(rec, "t", 1).tell(Crash())
    assert rec.wait_for(lambda ev: ("start", "t", 2) in ev)
    child_ref(rec, "t", 2).tell(ExitNormally())
    assert rec.wait_for(lambda ev: ("stop", "t", 2) in ev)
    # A permanent sibling's crash and restart is a marker that the exit was processed.
    child_ref(rec, "p", 1).tell(Crash())
    assert rec.wait_for(lambda ev: ("start", "p", 2) in ev)
    assert ("t", 2, False) in children(sup)  # still known (not running), not restarted
    assert rec.count("start", "t") == 2


def test_permanent_child_restarted_after_normal_exit(scheduler: Scheduler, rec: Recorder) -> None:
    start_sup(scheduler, [spec("p", rec)])
    assert rec.wait_for(lambda ev: len(ev) == 1)
    child_ref(rec, "p", 1).tell(ExitNormally())
    assert rec.wait_for(lambda ev: ("start", "p", 2) in ev)


def test_temporary_child_not_restarted_and_spec_dropped(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("tmp", rec, restart="temporary"), spec("p", rec)])
    assert rec.wait_for(lambda ev: len(ev) == 2)
    child_ref(rec, "tmp", 1).tell(Crash())
    assert wait_for(lambda: [c for c, _, _ in children(sup)] == ["p"])
    assert rec.count("start", "tmp") == 1


def test_temporary_bystander_of_group_restart_is_not_restarted(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(
        scheduler, [spec("a", rec), spec("tmp", rec, restart="temporary"), spec("c", rec)], strategy="one_for_all"
    )
    assert rec.wait_for(lambda ev: len(ev) == 3)
    child_ref(rec, "a", 1).tell(Crash())
    assert rec.wait_for(lambda ev: ("start", "c", 2) in ev)
    assert [c for c, _, _ in children(sup)] == ["a", "c"]
    assert rec.count("start", "tmp") == 1
    assert ("stop", "tmp", 1) in rec.events


def test_shutdown_timeout_of_a_hung_child(scheduler: Scheduler, rec: Recorder) -> None:
    never = threading.Event()
    tree = TreeView()
    sup = start_sup(scheduler, [spec("slow", rec, shutdown_timeout_s=0.3, stop_block=never), spec("p", rec)], tree=tree)
    assert rec.wait_for(lambda ev: len(ev) == 2)
    started = time.monotonic()
    sup.ask(RemoveChild("slow"), timeout=5)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 3.0  # waited its shutdown timeout, then gave up (brutal kill equivalent)
    assert [c for c, _, _ in children(sup)] == ["p"]
    never.set()


@pytest.mark.parametrize("pooled", [False, True], ids=["thread", "pooled-inline"])
def test_hung_child_is_replaced_by_health_check_and_later_messages_ignored(
    scheduler: Scheduler, rec: Recorder, pooled: bool
) -> None:
    """A pooled child checked inline while idle: hung in a handler, its check goes as a message
    (its turn cannot be taken) and times out, as a threaded child's does."""
    tree = TreeView()
    health = HealthCheck(interval_s=0.2, timeout_s=0.2, failures=2)
    sup = start_sup(scheduler, [spec("h", rec, health=health, pooled=pooled), spec("p", rec)], tree=tree)
    assert rec.wait_for(lambda ev: len(ev) == 2)
    release = threading.Event()
    hung_at = time.monotonic()
    child_ref(rec, "h", 1).tell(Hang(release))
    assert rec.wait_for(lambda ev: ("start", "h", 2) in ev, timeout=5)
    replaced_after = time.monotonic() - hung_at
    assert replaced_after < 0.2 + 0.2 + 1.0  # interval + timeout + margin (generous: noisy CI)
    node = tree.get("root/h")
    assert node is not None and node.abandoned == 1 and node.last_failure_type == "HealthCheckTimeout"
    release.set()  # the old instance wakes up, handles its queued stop and reports an exit: ignored
    assert rec.wait_for(lambda ev: ("stop", "h", 1) in ev)
    child_ref(rec, "p", 1).ask(Ping(), timeout=5)
    sup.ask(WhichChildren(), timeout=5)  # the supervisor has processed the stale ChildExited by now
    assert [(c, g) for c, g, _ in children(sup)] == [("h", 2), ("p", 1)]
    assert rec.count("start", "h") == 2


@pytest.mark.parametrize("pooled", [False, True], ids=["thread", "pooled-inline"])
def test_unhealthy_child_is_replaced_after_n_failures(scheduler: Scheduler, rec: Recorder, pooled: bool) -> None:
    health = HealthCheck(interval_s=0.1, timeout_s=1.0, failures=3)
    sup = start_sup(scheduler, [spec("u", rec, health=health, pooled=pooled)])
    assert rec.wait_for(lambda ev: ("start", "u", 1) in ev)
    if pooled:  # idle between its messages: checked on the supervisor's thread, no message
        assert rec.wait_for(lambda ev: ("check-inline", "u", 1) in ev)
    child_ref(rec, "u", 1).tell(SetHealthy(False))
    assert rec.wait_for(lambda ev: ("start", "u", 2) in ev, timeout=5)
    tree_failures = children(sup)
    assert tree_failures == [("u", 2, True)]
    if pooled:
        assert rec.count("check-inline", "u") >= 3 > rec.count("check-message", "u")


def test_failure_in_on_start_is_detected(scheduler: Scheduler, rec: Recorder) -> None:
    rec.fail_start.add("f")
    exhausted = Exhausted()
    start_sup(scheduler, [spec("f", rec), spec("p", rec)], max_restarts=3, on_exhausted=exhausted)
    assert exhausted.event.wait(5), "a child that never starts must exhaust the intensity"
    assert rec.count("start", "f") == 0


def test_failure_in_on_start_then_recovery(scheduler: Scheduler, rec: Recorder) -> None:
    rec.fail_start.add("f")
    sup = start_sup(scheduler, [spec("f", rec)], max_restarts=100)
    assert wait_for(lambda: children(sup)[0][1] >= 3)
    rec.fail_start.clear()
    assert rec.wait_for(lambda ev: any(e[0] == "start" and e[1] == "f" for e in ev))


def test_dynamic_children_do_not_touch_siblings(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("a", rec), spec("b", rec)])
    assert rec.wait_for(lambda ev: len(ev) == 2)
    sup.ask(AddChild(spec("c", rec)), timeout=5)
    assert rec.wait_for(lambda ev: ("start", "c", 1) in ev)
    sup.ask(RemoveChild("a"), timeout=5)
    assert ("stop", "a", 1) in rec.events
    assert [(c, g) for c, g, _ in children(sup)] == [("b", 1), ("c", 1)]
    assert rec.count("start", "b") == 1 and rec.count("stop", "b") == 0


def test_operator_restart_starts_a_new_generation_at_once(scheduler: Scheduler, rec: Recorder) -> None:
    sup = start_sup(scheduler, [spec("a", rec), spec("b", rec)])
    assert rec.wait_for(lambda ev: len(ev) == 2)
    assert sup.ask(RestartChild("a"), timeout=5) == 2
    assert rec.wait_for(lambda ev: ("start", "a", 2) in ev)
    assert rec.count("start", "b") == 1


def test_backoff_delay_is_capped_exponential_with_jitter() -> None:
    policy = Backoff(initial_s=1, max_s=60, multiplier=2, jitter=0.1, reset_after_s=120)
    rng = random.Random(7)
    delays = [backoff_delay(policy, attempt, rng) for attempt in range(10)]
    for attempt, delay in enumerate(delays):
        base = min(60, 2**attempt)
        assert base * 0.9 <= delay <= base * 1.1
    assert max(delays) <= 66
    exact = Backoff(initial_s=0.5, max_s=4, multiplier=3, jitter=0.0)
    assert [backoff_delay(exact, a) for a in range(4)] == [0.5, 1.5, 4, 4]


def test_restart_waits_the_backoff_delay(scheduler: Scheduler, rec: Recorder) -> None:
    slow = Backoff(initial_s=0.4, max_s=1, multiplier=2, jitter=0.0)
    start_sup(scheduler, [spec("a", rec, backoff=slow)])
    assert rec.wait_for(lambda ev: len(ev) == 1)
    crashed_at = time.monotonic()
    child_ref(rec, "a", 1).tell(Crash())
    assert rec.wait_for(lambda ev: ("start", "a", 2) in ev, timeout=5)
    assert time.monotonic() - crashed_at >= 0.39
