"""PooledActor: pykka's ThreadingActor semantics on a shared pool of worker threads."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka
import pytest

from fieldwatch.actors import pool_inbox
from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.messages import ChildExited, Health, HealthCheck, HealthReport
from fieldwatch.actors.pool import ActorPool, PooledActor
from tests.waiting import wait_for

A = TypeVar("A", bound=PooledActor)
PoolFactory = Callable[..., ActorPool]


def os_threads() -> int:
    """Threads of this process according to the kernel."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


@pytest.fixture
def make_pool() -> Iterator[PoolFactory]:
    """Build pools; afterwards stop every actor, then the pools' threads."""
    pools: list[ActorPool] = []

    def factory(workers: int = 4, **kwargs: Any) -> ActorPool:
        pool = ActorPool(workers, name=f"test-pool{len(pools)}", **kwargs)
        pools.append(pool)
        return pool

    yield factory
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    for pool in pools:
        pool.stop(timeout_s=2)


@pytest.fixture
def pool(make_pool: PoolFactory) -> ActorPool:
    return make_pool(4, stuck_after_s=5.0)


def on(pool: ActorPool, cls: type[A]) -> type[A]:
    """`cls` bound to `pool`, as an actor type built per test."""
    return type(cls.__name__, (cls,), {"pool": pool})


@dataclass(frozen=True)
class Block:
    """Hold the worker until `release` is set."""

    release: threading.Event


class Recorder(PooledActor):
    """Records its lifecycle and messages in a shared list."""

    def __init__(self, log: list[Any], tell_self: Any = None) -> None:
        super().__init__()
        self.log = log
        if tell_self is not None:
            self.actor_ref.tell(tell_self)  # queued before start: handled after on_start

    def on_start(self) -> None:
        self.log.append(("on_start", threading.current_thread().name))

    def on_stop(self) -> None:
        self.log.append("on_stop")

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.log.append(("on_failure", exc_type.__name__))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Block):
            message.release.wait(10)
            return None
        if message == "boom":
            raise RuntimeError("boom")
        if message == "exit":
            raise SystemExit(3)
        self.log.append(message)
        return ("echo", message)


class FailingStart(Recorder):
    def on_start(self) -> None:
        raise ValueError("no start")


class Counter(PooledActor):
    """For proxy calls."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.inner = Inner()

    def add(self, n: int) -> int:
        self.value += n
        return self.value


class Inner:
    pykka_traversable = True  # proxied as a nested object

    def hello(self, name: str) -> str:
        return f"hello {name}"


# -- ThreadingActor semantics ---------------------------------------------------


def test_on_start_first_then_messages_in_order_then_on_stop(pool: ActorPool) -> None:
    log: list[Any] = []
    ref = on(pool, Recorder).start(log, tell_self="from-init")
    for i in range(20):
        ref.tell(i)
    assert ref.ask("last", timeout=5) == ("echo", "last")
    assert ref.stop(timeout=5) is True
    assert log[0][0] == "on_start" and log[0][1].startswith("test-pool")
    assert log[1:] == ["from-init", *range(20), "last", "on_stop"]


def test_exception_in_ask_goes_to_caller_and_actor_continues(pool: ActorPool) -> None:
    log: list[Any] = []
    ref = on(pool, Recorder).start(log)
    with pytest.raises(RuntimeError, match="boom"):
        ref.ask("boom", timeout=5)
    assert ref.is_alive()
    assert ref.ask("still here", timeout=5) == ("echo", "still here")
    assert not any(isinstance(e, tuple) and e[0] == "on_failure" for e in log)


def test_exception_in_tell_calls_on_failure_stops_and_fails_pending_asks(pool: ActorPool) -> None:
    log: list[Any] = []
    ref = on(pool, Recorder).start(log)
    release = threading.Event()
    ref.tell(Block(release))
    ref.tell("boom")
    pending = ref.ask("after", block=False)
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=5)
    assert log[1:] == [("on_failure", "RuntimeError")]  # no on_stop after a failure, as pykka
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_stop_handles_earlier_messages_and_fails_later_ones(pool: ActorPool) -> None:
    log: list[Any] = []
    ref = on(pool, Recorder).start(log)
    release = threading.Event()
    ref.tell(Block(release))
    ref.tell("before")
    stopped = ref.stop(block=False)
    late = ref.ask("after", block=False)
    second_stop = ref.stop(block=False)
    release.set()
    assert stopped.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=5)
    assert second_stop.get(timeout=5) is True  # "was being stopped", as pykka's teardown
    assert log[1:] == ["before", "on_stop"]


def test_ask_tell_stop_after_stop(pool: ActorPool) -> None:
    ref = on(pool, Recorder).start([])
    ref.stop(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("x", timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("x")
    assert ref.stop(timeout=5) is False


def test_on_start_failure_stops_the_actor_without_hooks(pool: ActorPool) -> None:
    log: list[Any] = []
    ref = on(pool, FailingStart).start(log)
    wait_for(lambda: not ref.is_alive(), what="actor stopped")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("x", timeout=5)
    assert log == []  # pykka calls neither on_failure nor on_stop here


def test_registry_registration(pool: ActorPool) -> None:
    cls = on(pool, Recorder)
    ref = cls.start([])
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref
    assert pykka.ActorRegistry.get_by_class(cls) == [ref]
    ref.stop(timeout=5)
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_proxy_calls_and_attributes(pool: ActorPool) -> None:
    proxy = on(pool, Counter).start().proxy()
    assert proxy.add(2).get(timeout=5) == 2
    assert proxy.add(3).get(timeout=5) == 5
    assert proxy.value.get(timeout=5) == 5
    proxy.value = 40
    assert proxy.add(2).get(timeout=5) == 42
    assert proxy.inner.hello("pool").get(timeout=5) == "hello pool"


def test_base_exception_stops_all_actors_and_the_pool_keeps_serving(pool: ActorPool) -> None:
    class Plain(pykka.ThreadingActor):
        pass

    log: list[Any] = []
    refs = [on(pool, Recorder).start(log) for _ in range(3)] + [Plain.start()]
    refs[0].tell("exit")
    wait_for(lambda: not any(r.is_alive() for r in refs), what="all actors stopped")
    assert log.count("on_stop") == 3
    assert on(pool, Recorder).start([]).ask("again", timeout=5) == ("echo", "again")


def test_subclass_with_a_threading_base_first_is_refused() -> None:
    with pytest.raises(TypeError, match="put PooledActor first"):

        class Wrong(pykka.ThreadingActor, PooledActor):  # noqa: F841 - the definition is the test
            pass


def test_default_pool_is_shared_and_started_lazily() -> None:
    class OnDefault(PooledActor):
        def on_receive(self, message: Any) -> Any:
            return threading.current_thread().name

    try:
        pool = ActorPool.default(workers=2)
        where: str = OnDefault.start().ask("where", block=True, timeout=5)
        assert where.startswith("fieldwatch-pool")
        assert pool.stats().workers == 2
    finally:
        assert ActorPool.default().stop(timeout_s=5)


def test_pool_stop_stops_its_actors_then_refuses_new_ones(make_pool: PoolFactory) -> None:
    pool = make_pool(2)
    log: list[Any] = []
    ref = on(pool, Recorder).start(log)
    assert pool.stop(timeout_s=5) is True
    assert not ref.is_alive() and log[-1] == "on_stop"
    with pytest.raises(RuntimeError, match="stopped"):
        on(pool, Recorder).start([])
    assert pykka.ActorRegistry.get_all() == []


# -- scheduling: fairness, exactly once, in order ------------------------------------


def test_one_busy_actor_yields_after_turn_budget(make_pool: PoolFactory) -> None:
    pool = make_pool(1, turn_budget=4, stuck_after_s=5.0)
    order: list[str] = []

    class Tagged(PooledActor):
        def __init__(self, tag: str) -> None:
            super().__init__()
            self.tag = tag

        def on_receive(self, message: Any) -> None:
            if isinstance(message, Block):
                message.release.wait(10)
            else:
                order.append(self.tag)

    cls = on(pool, Tagged)
    gate, busy, quiet = cls.start("gate"), cls.start("A"), cls.start("B")
    release = threading.Event()
    gate.tell(Block(release))
    wait_for(lambda: pool.stats().busy == 1, what="the only worker held")
    for _ in range(40):
        busy.tell("work")
    quiet.tell("work")
    release.set()
    wait_for(lambda: len(order) == 41, what="all handled")
    assert order.index("B") == 4


class Sink(PooledActor):
    """Counts (producer, seq) messages; flags two workers inside at once."""

    def __init__(self, handled: list[None]) -> None:
        super().__init__()
        self.seen: dict[int, list[int]] = {}
        self.handled = handled  # shared: list.append is atomic
        self.inside = False
        self.overlaps = 0

    def on_receive(self, message: Any) -> Any:
        if message == "report":
            return self.seen, self.overlaps
        if self.inside:
            self.overlaps += 1
        self.inside = True
        producer, seq = message
        self.seen.setdefault(producer, []).append(seq)
        self.handled.append(None)
        self.inside = False
        return None


class YieldingLock:
    """A lock that hands the GIL to another thread after each release.

    Under the GIL a check-then-act window between two critical sections is rarely
    interrupted; yielding there makes a put() race the end of a turn constantly.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        time.sleep(0)


@pytest.fixture
def racy_inboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inboxes with yielding locks, and thread switches every microsecond."""
    original = pool_inbox.PooledInbox.__init__

    def init(self: pool_inbox.PooledInbox) -> None:
        original(self)
        self._lock = YieldingLock()  # type: ignore[assignment]

    monkeypatch.setattr(pool_inbox.PooledInbox, "__init__", init)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_producers(producers: int, body: Callable[[int], None]) -> None:
    """Run `body(p)` on `producers` threads released together; re-raise their errors."""
    barrier = threading.Barrier(producers)
    errors: list[BaseException] = []

    def run(p: int) -> None:
        barrier.wait()
        try:
            body(p)
        except Exception as err:  # noqa: BLE001 - handed to the test thread below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == [] and not any(t.is_alive() for t in threads)


@pytest.mark.usefixtures("racy_inboxes")
@pytest.mark.parametrize("n_sinks", [1, 16])
def test_stress_many_producers_every_message_once_in_order(make_pool: PoolFactory, n_sinks: int) -> None:
    pool = make_pool(4, turn_budget=2, stuck_after_s=5.0)
    producers, per_producer = 8, 1500
    handled: list[None] = []
    sinks = [on(pool, Sink).start(handled) for _ in range(n_sinks)]

    def produce(p: int) -> None:
        for seq in range(per_producer):
            sinks[(p + seq) % n_sinks].tell((p, seq))

    run_producers(producers, produce)
    # No further message may be needed to wake a sink: a lost wake-up would hang here.
    wait_for(lambda: len(handled) == producers * per_producer, 15, what="all handled")
    merged: dict[int, list[int]] = {}
    for ref in sinks:
        seen: dict[int, list[int]]
        seen, overlaps = ref.ask("report", block=True, timeout=5)
        assert overlaps == 0  # never two workers on one actor
        for p, seqs in seen.items():
            assert seqs == sorted(seqs)  # per-producer order
            merged.setdefault(p, []).extend(seqs)
    assert {p: sorted(s) for p, s in merged.items()} == {p: list(range(per_producer)) for p in range(producers)}
    wait_for(lambda: pool.stats().queued == 0, what="run queue drained")


@pytest.mark.usefixtures("racy_inboxes")
@pytest.mark.parametrize("budget", [1, 2])  # 1: the turn ends in end_turn(); 2: in take()
def test_stress_put_racing_the_end_of_a_turn_never_strands_a_message(make_pool: PoolFactory, budget: int) -> None:
    # One asker per actor: its next put lands while the worker is ending the turn that
    # answered the previous one. A put left unscheduled has no later put to rescue it.
    pool = make_pool(4, turn_budget=budget, stuck_after_s=5.0)
    handled: list[None] = []
    sinks = [on(pool, Sink).start(handled) for _ in range(16)]

    def ping(p: int) -> None:
        for seq in range(1000):
            sinks[p].ask((p, seq), timeout=5)

    run_producers(16, ping)
    assert len(handled) == 16 * 1000


# -- hung handlers ---------------------------------------------------------------------


def test_hung_handler_is_compensated_and_the_extra_worker_retires(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(1, max_workers=3, stuck_after_s=0.3)
    caplog.set_level(logging.INFO, logger="fieldwatch.actors.pool_workers")
    hung = on(pool, Recorder).start([])
    others = [on(pool, Recorder).start([]) for _ in range(100)]
    release = threading.Event()
    try:
        hung.tell(Block(release))
        wait_for(lambda: pool.stats().busy == 1, what="the only worker held")
        for _round in range(3):  # the others keep being served while the handler hangs
            futures = [ref.ask(i, block=False) for i, ref in enumerate(others)]
            assert [f.get(timeout=5) for f in futures] == [("echo", i) for i in range(100)]
        stats = pool.stats()
        assert (stats.workers, stats.stuck, stats.compensations_total) == (2, 1, 1)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "stuck" in warnings[0].getMessage()
    finally:
        release.set()
    wait_for(lambda: pool.stats().stuck == 0 and pool.stats().workers == 1, what="extra worker retired")
    assert hung.ask("back", timeout=5) == ("echo", "back")
    assert any("returned" in r.getMessage() for r in caplog.records)


def test_compensation_is_bounded_by_max_workers(make_pool: PoolFactory, caplog: pytest.LogCaptureFixture) -> None:
    pool = make_pool(1, max_workers=2, stuck_after_s=0.2)
    hung = [on(pool, Recorder).start([]) for _ in range(3)]
    release = threading.Event()
    try:
        for ref in hung:
            ref.tell(Block(release))
        wait_for(lambda: pool.stats().stuck == 2, what="two stuck workers")
        wait_for(lambda: any(r.levelno == logging.ERROR for r in caplog.records), what="at-max error")
        assert pool.stats().workers == 2
        assert pool.stats().queued == 1  # the third waits: the bound holds
    finally:
        release.set()
    wait_for(lambda: pool.stats().workers == 1 and pool.stats().busy == 0, what="back to one worker")
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 1


def test_five_thousand_actors_use_only_the_pool_threads(make_pool: PoolFactory) -> None:
    before_py, before_os = threading.active_count(), os_threads()
    pool = make_pool(4, stuck_after_s=5.0)
    log: list[Any] = []
    refs = [on(pool, Recorder).start(log) for _ in range(5000)]
    for i, ref in enumerate(refs):
        ref.tell(i)
    wait_for(lambda: len(log) == 10_000, 20, what="on_start and one message each")
    assert threading.active_count() - before_py <= 4 + 1  # workers + monitor
    assert os_threads() - before_os <= 4 + 1


# -- fieldwatch's SupervisedActor on the pool ------------------------------------------


class Parent(pykka.ThreadingActor):
    """Stands in for a supervisor: records what its children tell it."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> None:
        self.got.append(message)


class PooledWorker(PooledActor, SupervisedActor):
    """SupervisedActor as is, run on the pool: PooledActor first in the bases."""

    def started(self) -> None:
        if self.ctx.child_id == "bad-start":
            raise OSError("cannot open")
        self.where = threading.current_thread().name

    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        return self.where


@pytest.mark.parametrize("how", ["stop", "crash", "bad-start"])
def test_supervised_actor_runs_on_the_pool(pool: ActorPool, how: str) -> None:
    parent = Parent.start()
    ctx = ChildContext(how, f"root/sites/s/{how}", 1, 0, parent, None)
    ref = on(pool, PooledWorker).start(ctx)
    if how != "bad-start":
        where: str = ref.ask("where", block=True, timeout=5)
        assert where.startswith("test-pool")
        ref.tell(HealthCheck(7, parent))
        if how == "stop":
            ref.stop(timeout=5)
        else:
            ref.tell("boom")
    got = parent.proxy().got
    exits = wait_for(lambda: [m for m in got.get(timeout=5) if isinstance(m, ChildExited)], what="exit report")
    expected = {
        "stop": ChildExited("stop", 1, True, None, ""),
        "crash": ChildExited("crash", 1, False, "RuntimeError", "boom"),
        "bad-start": ChildExited("bad-start", 1, False, "OSError", "cannot open"),
    }[how]
    assert exits == [expected]
    if how != "bad-start":
        assert HealthReport(how, 1, 7, Health(True)) in got.get(timeout=5)
    wait_for(lambda: not ref.is_alive(), what="child stopped")


class Inline(Recorder):
    """Allows call_if_idle; `peek` runs on the caller's thread while the turn is held."""

    allowed = True

    def peek(self) -> Any:
        self.log.append(("peek", threading.current_thread().name))
        self.actor_ref.tell("told while held")  # the actor is scheduled: queued, not run now
        assert self.log[-1][0] == "peek", "nothing of the actor may run while its turn is held"
        return "peeked"


def test_call_if_idle_holds_the_turn_and_hands_on_what_came_meanwhile(pool: ActorPool) -> None:
    from fieldwatch.actors.pool import call_if_idle

    log: list[Any] = []
    ref = on(pool, Inline).start(log)
    ref.ask("ready", timeout=5)  # started, idle
    assert call_if_idle(ref, "peek", "allowed") == (True, "peeked")
    assert log[-1] == ("peek", threading.current_thread().name)
    wait_for(lambda: "told while held" in log, what="the message told during the held turn handled")
    assert call_if_idle(ref, "peek", "not-an-attribute") == (False, None)  # not allowed: untouched
    release = threading.Event()
    ref.tell(Block(release))
    wait_for(lambda: call_if_idle(ref, "peek", "allowed") == (False, None), what="busy: no inline call")
    calls = sum(1 for entry in log if isinstance(entry, tuple) and entry[0] == "peek")
    release.set()
    ref.stop(timeout=5)
    assert call_if_idle(ref, "peek", "allowed") == (False, None)  # stopped
    assert sum(1 for entry in log if isinstance(entry, tuple) and entry[0] == "peek") == calls == 1
