"""Small test actors and a recorder for the supervisor tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.messages import Health
from fieldwatch.actors.messages import HealthCheck as HealthCheckMessage
from fieldwatch.actors.pool import PooledActor
from fieldwatch.actors.supervisor import ChildSpec
from fieldwatch.policy import Backoff, ChildPolicy, HealthCheck
from tests.waiting import wait_for


@dataclass(frozen=True)
class Crash:
    """Raise inside on_receive (a tell: reaches on_failure)."""


@dataclass(frozen=True)
class ExitNormally:
    """Stop by itself."""


@dataclass(frozen=True)
class Hang:
    """Block on an Event that is never set."""

    event: threading.Event


@dataclass(frozen=True)
class Ping:
    """Reply with the generation."""


@dataclass(frozen=True)
class SetHealthy:
    ok: bool


@dataclass
class Recorder:
    """Records starts, stops and messages handled, thread-safe, with waiting."""

    events: list[tuple[str, str, int]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    fail_start: set[str] = field(default_factory=set)
    refs: dict[tuple[str, int], Any] = field(default_factory=dict)

    def add(self, what: str, child: str, generation: int) -> None:
        with self.cond:
            self.events.append((what, child, generation))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple[str, str, int]]], bool], timeout: float = 5.0) -> bool:
        """Wait (woken by `add`) until `predicate(events)` holds; AssertionError at the deadline."""
        return wait_for(lambda: predicate(self.events), timeout, what="the recorded starts and exits", cond=self.cond)

    def count(self, what: str, child: str) -> int:
        with self.cond:
            return sum(1 for w, c, _ in self.events if w == what and c == child)

    def sequence(self, what: str) -> list[str]:
        with self.cond:
            return [c for w, c, _ in self.events if w == what]

    def clear(self) -> None:
        with self.cond:
            self.events.clear()


class Worker(SupervisedActor):
    """A child that does what it is told: crash, exit, hang, be unhealthy."""

    def __init__(self, ctx: ChildContext, rec: Recorder, stop_delay: threading.Event | None = None) -> None:
        super().__init__(ctx)
        self.rec = rec
        self.healthy = True
        self.stop_block = stop_delay

    def started(self) -> None:
        if self.ctx.child_id in self.rec.fail_start:
            raise RuntimeError("cannot start")
        self.rec.refs[(self.ctx.child_id, self.ctx.generation)] = self.actor_ref
        self.rec.add("start", self.ctx.child_id, self.ctx.generation)

    def stopping(self) -> None:
        if self.stop_block is not None:
            self.stop_block.wait(30)
        self.rec.add("stop", self.ctx.child_id, self.ctx.generation)

    def check_health(self) -> Health:
        return Health(self.healthy, "" if self.healthy else "told to be unhealthy")

    def handle(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise RuntimeError(f"{self.ctx.child_id} crashed")
        if isinstance(message, ExitNormally):
            self.stop()
            return None
        if isinstance(message, Hang):
            self.rec.add("hang", self.ctx.child_id, self.ctx.generation)
            message.event.wait(60)
            self.rec.add("after-hang", self.ctx.child_id, self.ctx.generation)
            return None
        if isinstance(message, SetHealthy):
            self.healthy = message.ok
            return None
        if isinstance(message, Ping):
            return self.ctx.generation
        return super().handle(message)


class InlineWorker(PooledActor, Worker):
    """A Worker on the pool whose supervisor may check it inline while it is idle; records
    how each check reached it ("check-inline" on the supervisor's thread, "check-message")."""

    inline_health_check = True

    def check_health(self) -> Health:
        if not threading.current_thread().name.startswith("fieldwatch-pool"):
            self.rec.add("check-inline", self.ctx.child_id, self.ctx.generation)
        return super().check_health()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HealthCheckMessage):
            self.rec.add("check-message", self.ctx.child_id, self.ctx.generation)
        return super().on_receive(message)


FAST_BACKOFF = Backoff(initial_s=0.01, max_s=0.05, multiplier=2.0, jitter=0.0, reset_after_s=120)
SLOW_HEALTH = HealthCheck(interval_s=60, timeout_s=5, failures=1)


def spec(
    child_id: str,
    rec: Recorder,
    *,
    restart: str = "permanent",
    health: HealthCheck = SLOW_HEALTH,
    backoff: Backoff = FAST_BACKOFF,
    shutdown_timeout_s: float = 1.0,
    stop_block: threading.Event | None = None,
    pooled: bool = False,
) -> ChildSpec:
    def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return (InlineWorker if pooled else Worker).start(ctx, rec, stop_block)

    return ChildSpec(
        id=child_id,
        start=_start,
        policy=ChildPolicy(restart=restart, backoff=backoff, health_check=health, shutdown_timeout_s=shutdown_timeout_s),
    )
