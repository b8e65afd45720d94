"""An Erlang/OTP-style supervisor on pykka: strategies, restart types, intensity.

Children are started in declared order and stopped in reverse order. A group
restart (one_for_all, rest_for_one) counts as one restart for intensity. More
than `max_restarts` restarts within `within_s` stops every child and fails the
supervisor to its parent; the root calls `on_exhausted` (the daemon exits 3).
Health checks (`fieldwatch.actors.health`) are tells with a deadline, so a hung child
never blocks us: it is abandoned and replaced by a new generation whose predecessor is
ignored.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka

from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.health import ChildHealth, HealthChecks, Sweep
from fieldwatch.actors.messages import ChildExited, Health, HealthReport
from fieldwatch.actors.tree import TreeNode, TreeView
from fieldwatch.errors import ConflictError, NotFoundError
from fieldwatch.policy import ChildPolicy, Intensity, backoff_delay
from fieldwatch.policy import HealthCheck as HealthCheckPolicy

__all__ = [
    "AddChild",
    "ChildRef",
    "ChildSpec",
    "RemoveChild",
    "RestartChild",
    "Supervisor",
    "SupervisorOptions",
    "WhichChildren",
    "backoff_delay",
    "supervisor_spec",
]

logger = logging.getLogger(__name__)

StartFn = Callable[[ChildContext], "pykka.ActorRef[Any]"]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child and how to treat its exits."""

    id: str
    start: StartFn
    policy: ChildPolicy = field(default_factory=ChildPolicy)
    kind: str = "worker"  # worker | supervisor | an endpoint kind
    next_generation: Callable[[int], int] | None = None  # called with the restarts; default: a counter per child
    on_started: Callable[[ChildContext], None] | None = None  # after each spawn
    on_removed: Callable[[], None] | None = None  # when the spec is dropped


@dataclass(frozen=True, slots=True)
class SupervisorOptions:
    """A supervisor's own policy and collaborators."""

    strategy: str = "one_for_one"
    intensity: Intensity = field(default_factory=Intensity)
    tree: TreeView | None = None
    on_exhausted: Callable[[str], None] | None = None  # root only


# Internal messages -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RestartDue:
    child_ids: tuple[str, ...]
    token: int


@dataclass(frozen=True, slots=True)
class AddChild:
    """Start a new child at runtime (after all current ones)."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class RemoveChild:
    """Stop a child and drop its spec; siblings are not touched."""

    child_id: str


@dataclass(frozen=True, slots=True)
class RestartChild:
    """Operator restart: stop the child and start a new generation at once."""

    child_id: str


@dataclass(frozen=True, slots=True)
class ChildRef:
    """Ask for the running actor of a child (None while it is restarting)."""

    child_id: str


@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Ask for (child_id, generation, running) of every child, in start order."""


class _Child:
    """Bookkeeping for one child spec (slots: the health sweep reads thousands of them a second)."""

    __slots__ = ("spec", "child_id", "health_policy", "ref", "generation", "restarts", "attempt", "started_mono",
                 "started_wall", "health", "restarting", "abandoned", "last_failure")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.child_id = spec.id
        self.health_policy: HealthCheckPolicy = spec.policy.health_check
        self.ref: pykka.ActorRef[Any] | None = None
        self.generation = 0
        self.restarts = 0
        self.attempt = 0
        self.started_mono = 0.0
        self.started_wall: float | None = None
        self.health = ChildHealth()
        self.restarting = False
        self.abandoned = 0
        self.last_failure: tuple[str, str] | None = None


class Supervisor(SupervisedActor):
    """A supervisor actor; itself supervised by its parent (or the daemon, for the root)."""

    def __init__(self, ctx: ChildContext, options: SupervisorOptions, specs: list[ChildSpec]) -> None:
        super().__init__(ctx)
        self.options = options
        self._children: list[_Child] = [_Child(s) for s in specs]
        self._index: dict[str, _Child] = {c.spec.id: c for c in self._children}
        self._health: HealthChecks[_Child] = HealthChecks(
            find=self._find, replace=self._replace, crashed=self._crashed, tell_self=self._tell_self
        )
        self._restart_times: deque[float] = deque()
        self._tokens = itertools.count(1)
        self._pending_restart: dict[str, int] = {}
        self._exhausted = False
        self._gen_counters: dict[str, itertools.count[int]] = {}

    # -- lifecycle -------------------------------------------------------------

    def started(self) -> None:
        self._health.start(self.ctx.scheduler)
        self._publish_self("running")
        for child in list(self._children):
            self._start_child(child)

    def stopping(self) -> None:
        self._health.stop()
        self._stop_children(list(self._children))
        if self.options.tree is not None:
            self.options.tree.remove(self.ctx.path + "/")
            self.options.tree.update(self.ctx.path, state="stopped")

    def check_health(self) -> Health:
        return Health(not self._exhausted, "intensity exhausted" if self._exhausted else "")

    # -- messages --------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        if self._exhausted and isinstance(message, (ChildExited, HealthReport, Sweep, _RestartDue)):
            # Stopping after escalating (our stop is queued behind these): the exits of the
            # children we stopped must not escalate again, once per child.
            return None
        if isinstance(message, ChildExited):
            return self._on_exit(message)
        if isinstance(message, HealthReport):
            return self._health.on_report(message)
        if isinstance(message, Sweep):
            return self._health.sweep()
        if isinstance(message, _RestartDue):
            return self._on_restart_due(message)
        if isinstance(message, AddChild):
            return self._add(message.spec)
        if isinstance(message, RemoveChild):
            return self._remove(message.child_id)
        if isinstance(message, RestartChild):
            return self._operator_restart(message.child_id)
        if isinstance(message, ChildRef):
            child = self._find(message.child_id)
            return None if child is None else child.ref
        if isinstance(message, WhichChildren):
            return [(c.spec.id, c.generation, c.ref is not None) for c in self._children]
        return super().handle(message)

    def _find(self, child_id: str) -> _Child | None:
        return self._index.get(child_id)

    def _add(self, spec: ChildSpec) -> int:
        if self._find(spec.id) is not None:
            raise ConflictError(f"{self.ctx.path}: child {spec.id!r} already exists")
        child = _Child(spec)
        self._children.append(child)
        self._index[spec.id] = child
        self._start_child(child)
        return child.generation

    def _remove(self, child_id: str) -> None:
        child = self._find(child_id)
        if child is None:
            raise NotFoundError(f"{self.ctx.path}: no child {child_id!r}")
        self._stop_child(child)
        self._drop(child)

    def _operator_restart(self, child_id: str) -> int:
        child = self._find(child_id)
        if child is None:
            raise NotFoundError(f"{self.ctx.path}: no child {child_id!r}")
        self._stop_child(child)
        child.restarts += 1
        self._pending_restart.pop(child_id, None)
        self._start_child(child)
        return child.generation

    # -- starting and stopping -------------------------------------------------

    def _path_of(self, child: _Child) -> str:
        return f"{self.ctx.path}/{child.spec.id}"

    def _next_generation(self, child: _Child) -> int:
        if child.spec.next_generation is not None:
            return child.spec.next_generation(child.restarts)
        counter = self._gen_counters.setdefault(child.spec.id, itertools.count(1))
        return next(counter)

    def _start_child(self, child: _Child) -> None:
        child.restarting = False
        child.generation = self._next_generation(child)
        self._health.reset(child)
        ctx = ChildContext(
            child_id=child.spec.id,
            path=self._path_of(child),
            generation=child.generation,
            restarts=child.restarts,
            parent=self.actor_ref,
            scheduler=self.ctx.scheduler,
        )
        child.started_mono = time.monotonic()
        child.started_wall = time.time()
        try:
            child.ref = child.spec.start(ctx)
        except Exception as err:  # noqa: BLE001 - supervision boundary: a child that cannot start is a crash
            logger.error("%s: failed to start: %s: %s", ctx.path, type(err).__name__, err)
            child.ref = None
            self._publish(child, "failed")
            self.actor_ref.tell(ChildExited(child.spec.id, child.generation, False, type(err).__name__, str(err)))
            return
        if child.spec.on_started is not None:
            child.spec.on_started(ctx)
        self._publish(child, "running")
        self._health.schedule(child)

    def _tell_self(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _cancel_timers(self, child: _Child) -> None:
        self._health.cancel(child)

    def _stop_child(self, child: _Child, *, hung: bool = False) -> None:
        """Stop one child, waiting at most its shutdown timeout (not at all when hung)."""
        self._cancel_timers(child)
        ref, child.ref = child.ref, None
        if ref is None:
            return
        try:
            future = ref.stop(block=False)
            if hung:
                raise pykka.Timeout("hung")
            future.get(timeout=child.spec.policy.shutdown_timeout_s)
        except pykka.Timeout:
            child.abandoned += 1
            logger.warning(
                "%s: generation %d did not stop within %.1fs; abandoned",
                self._path_of(child),
                child.generation,
                0.0 if hung else child.spec.policy.shutdown_timeout_s,
            )
        except pykka.ActorDeadError:
            pass
        self._publish(child, "stopped")

    def _stop_children(self, children: list[_Child]) -> None:
        for child in reversed(children):
            self._stop_child(child)

    def _drop(self, child: _Child) -> None:
        self._cancel_timers(child)
        if self._index.get(child.spec.id) is child:
            del self._index[child.spec.id]
            self._children.remove(child)
        self._pending_restart.pop(child.spec.id, None)
        if self.options.tree is not None:
            self.options.tree.remove(self._path_of(child))
        if child.spec.on_removed is not None:
            child.spec.on_removed()

    # -- failures ----------------------------------------------------------------

    def _on_exit(self, msg: ChildExited) -> None:
        child = self._find(msg.child_id)
        if child is None or msg.generation != child.generation or child.restarting:
            return  # an abandoned or already-handled instance: ignored
        self._cancel_timers(child)
        child.ref = None
        if not msg.normal:
            child.last_failure = (msg.exc_type or "Exception", msg.message)
            logger.error("%s: exited: %s: %s", self._path_of(child), msg.exc_type, msg.message)
        self._child_terminated(child, abnormal=not msg.normal)

    def _child_terminated(self, child: _Child, *, abnormal: bool) -> None:
        restart = child.spec.policy.restart
        if restart == "temporary" or (restart == "transient" and not abnormal):
            self._publish(child, "stopped")
            if restart == "temporary":
                self._drop(child)  # OTP: a temporary child's spec is dropped
            return
        if not self._count_restart():
            return
        # The backoff resets after reset_after_s of stable running.
        if time.monotonic() - child.started_mono >= child.spec.policy.backoff.reset_after_s:
            child.attempt = 0
        delay = backoff_delay(child.spec.policy.backoff, child.attempt)
        child.attempt += 1
        strategy = self.options.strategy
        index = self._children.index(child)
        if strategy == "one_for_one":
            group = [child]
        elif strategy == "one_for_all":
            group = list(self._children)
        else:  # rest_for_one
            group = self._children[index:]
        others = [c for c in group if c is not child]
        self._stop_children(others)
        for other in others:
            if other.spec.policy.restart == "temporary":
                self._drop(other)  # a temporary bystander is not restarted; its spec goes
        group = [c for c in group if c in self._children]
        for member in group:
            member.restarting = True
            member.restarts += 1
            self._publish(member, "restarting")
        if self.options.tree is not None:
            self.options.tree.count_restart(self.ctx.path)
        token = next(self._tokens)
        for member in group:
            self._pending_restart[member.spec.id] = token
        self.ctx.scheduler.tell_later(delay, self.actor_ref, _RestartDue(tuple(c.spec.id for c in group), token))

    def _count_restart(self) -> bool:
        """Record a restart; False (and escalate) when intensity is exceeded."""
        now = time.monotonic()
        window = self.options.intensity
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > window.within_s:
            self._restart_times.popleft()
        if len(self._restart_times) <= window.max_restarts:
            return True
        self._escalate()
        return False

    def _escalate(self) -> None:
        self._exhausted = True
        reason = (
            f"reached max restart intensity ({self.options.intensity.max_restarts} "
            f"in {self.options.intensity.within_s:g}s)"
        )
        logger.error("%s: %s; stopping all children", self.ctx.path, reason)
        self._stop_children(list(self._children))
        self._publish_self("failed", ("Shutdown", reason))
        if self.options.on_exhausted is not None:
            self.options.on_exhausted(reason)
        # Fail to the parent, which applies its own strategy.
        self._report_exit(False, "Shutdown", reason)
        self.stop()

    def _on_restart_due(self, msg: _RestartDue) -> None:
        for child_id in msg.child_ids:  # start order
            child = self._find(child_id)
            if child is None or self._pending_restart.get(child_id) != msg.token:
                continue
            del self._pending_restart[child_id]
            self._start_child(child)

    # -- health checks ---------------------------------------------------------

    def _crashed(self, child: _Child) -> None:
        """A child found dead by its health check, without having told us: a crash."""
        self._on_exit(ChildExited(child.spec.id, child.generation, False, "ActorDeadError", "actor is dead"))

    def _replace(self, child: _Child, exc_type: str, message: str) -> None:
        """Replace a child that failed its health check, even if its thread is hung."""
        logger.error("%s: generation %d %s: %s; replacing", self._path_of(child), child.generation, exc_type, message)
        child.last_failure = (exc_type, message)
        self._stop_child(child, hung=exc_type == "HealthCheckTimeout")
        self._child_terminated(child, abnormal=True)

    # -- tree view ---------------------------------------------------------------

    def _publish(self, child: _Child, state: str) -> None:
        if self.options.tree is None:
            return
        failure = child.last_failure
        self.options.tree.put(
            TreeNode(
                path=self._path_of(child),
                kind=child.spec.kind,
                state=state,
                generation=child.generation,
                restarts=child.restarts,
                started_at=child.started_wall,
                last_failure_type=failure[0] if failure else None,
                last_failure_message=failure[1] if failure else None,
                abandoned=child.abandoned,
            )
        )

    def _publish_self(self, state: str, failure: tuple[str, str] | None = None) -> None:
        tree = self.options.tree
        if tree is None:
            return
        node = tree.get(self.ctx.path)
        if node is None:
            tree.put(TreeNode(self.ctx.path, "supervisor", state, self.ctx.generation, self.ctx.restarts, time.time()))
        else:
            tree.update(self.ctx.path, state=state)
        if failure is not None:
            tree.update(self.ctx.path, last_failure_type=failure[0], last_failure_message=failure[1])


def supervisor_spec(
    child_id: str,
    options: SupervisorOptions,
    specs: Callable[[], list[ChildSpec]],
    policy: ChildPolicy | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ChildSpec:
    """A ChildSpec whose child is itself a Supervisor over `specs()` (fresh on each start)."""

    def _start(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return Supervisor.start(ctx, options, specs())

    return ChildSpec(id=child_id, start=_start, policy=policy or ChildPolicy(), kind="supervisor")
