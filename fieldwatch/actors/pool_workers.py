"""The worker threads of the pooled runtime: `ActorPool`, serving the mailboxes of many `PooledActor`s.

`workers` threads take actors off one run queue; a worker handles at most `turn_budget`
messages of one actor per turn, then requeues it (how an actor's turn runs, pykka's
semantics, is `fieldwatch.actors.pool`'s). A worker stuck on one message for longer than
`stuck_after_s` is noticed by a monitor thread, which adds a compensating worker (up to
`max_workers`); when the stuck worker returns, one worker retires.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from fieldwatch.actors.pool_inbox import PooledInbox

if TYPE_CHECKING:
    from fieldwatch.actors.pool import PooledActor

__all__ = ["ActorPool", "PoolStats", "PoolWorker"]

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
DEFAULT_MAX_WORKERS = 64
DEFAULT_TURN_BUDGET = 16
DEFAULT_STUCK_AFTER_S = 2.0


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of an `ActorPool`, for metrics."""

    workers: int  # live worker threads, compensating ones included
    busy: int  # workers inside a handler right now
    stuck: int  # workers on one message for longer than stuck_after_s
    queued: int  # actors waiting on the run queue for a worker (approximate)
    compensations_total: int  # compensating workers started since the pool started


class PoolWorker:
    """One pool thread's bookkeeping; read by the monitor without the hot path locking."""

    __slots__ = ("pool", "thread", "busy_since", "actor", "message", "stuck", "stuck_token")

    def __init__(self, pool: ActorPool, name: str) -> None:
        self.pool = pool
        self.thread = threading.Thread(target=pool._work, args=(self,), name=name, daemon=True)
        self.busy_since: float | None = None
        self.actor: PooledActor | None = None
        self.message: Any = None
        self.stuck = False
        self.stuck_token: float | None = None  # the busy_since the monitor judged stuck

    def begin(self, actor: PooledActor, message: Any) -> None:
        """Entering a handler (on_start, a message)."""
        self.actor = actor
        self.message = message
        self.busy_since = time.monotonic()

    def end(self) -> None:
        """Left the handler; if the monitor had declared it stuck, say it returned."""
        self.busy_since = None
        self.actor = None
        self.message = None
        if self.stuck:
            self.pool._unstick(self)


class ActorPool:
    """A fixed set of worker threads serving the mailboxes of many `PooledActor`s.

    `workers` threads serve the run queue; a worker handles at most `turn_budget`
    messages of one actor per turn, then requeues it. A monitor adds a worker for
    each one stuck in a handler longer than `stuck_after_s`, up to `max_workers`.
    Threads start with the first actor (or `start()`); `stop()` ends it all.
    """

    _default: ClassVar[ActorPool | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        turn_budget: int = DEFAULT_TURN_BUDGET,
        stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
        name: str = "actor-pool",
    ) -> None:
        if workers < 1 or max_workers < workers or turn_budget < 1 or stuck_after_s <= 0:
            raise ValueError("need 1 <= workers <= max_workers, turn_budget >= 1, stuck_after_s > 0")
        self.name = name
        self.turn_budget = turn_budget
        self.stuck_after_s = stuck_after_s
        self._size = workers
        self._max = max_workers
        self._lock = threading.Lock()
        self._runq: queue.SimpleQueue[PooledInbox | None] = queue.SimpleQueue()  # None: retire token
        self._workers: set[PoolWorker] = set()
        self._inboxes: set[PooledInbox] = set()  # attached, not yet stopped
        self._names = count(1)
        self._stuck = 0
        self._compensations = 0
        self._max_logged = False
        self._started = False
        self._closed = False
        self._stopping = threading.Event()

    @classmethod
    def default(cls, workers: int | None = None) -> ActorPool:
        """The process-wide pool used by actors whose class sets no `pool`.

        Created on first use with `workers` (default 8) threads, started with its
        first actor; a later call with `workers` resizes it.
        """
        with cls._default_lock:
            pool = cls._default
            if pool is None or pool._closed:
                pool = cls(workers or DEFAULT_WORKERS, max_workers=max(DEFAULT_MAX_WORKERS, workers or 0))
                pool.name = "fieldwatch-pool"
                cls._default = pool
            elif workers is not None:
                pool.resize(workers)
            return pool

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the stuck-worker monitor (idempotent)."""
        with self._lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError(f"actor pool {self.name} is stopped")
            self._started = True
            for _ in range(self._size):
                self._spawn_locked()
        threading.Thread(target=self._watch, name=f"{self.name}-monitor", daemon=True).start()

    def resize(self, workers: int) -> None:
        """Change the base number of workers (compensating ones come on top)."""
        if not 1 <= workers <= self._max:
            raise ValueError(f"workers must be within 1..{self._max}")
        with self._lock:
            self._size = workers
            if not self._started:
                return
            while len(self._workers) < self._target_locked():
                self._spawn_locked()
            for _ in range(len(self._workers) - self._target_locked()):
                self._runq.put(None)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop this pool's actors (on_stop runs), then its threads.

        Returns True when every worker exited within `timeout_s` (a worker hung in a
        handler is abandoned: they are daemon threads).
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            actors = [inbox.actor for inbox in self._inboxes if inbox.actor is not None]
        futures = [actor.actor_ref.stop(block=False) for actor in reversed(actors)]
        for future in futures:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                pass  # a hung actor: abandoned with its worker
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        self._stopping.set()
        for _ in workers:
            self._runq.put(None)
        me = threading.current_thread()
        for worker in workers:
            if worker.thread is not me:
                worker.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(w.thread.is_alive() for w in workers if w.thread is not me)

    def stats(self) -> PoolStats:
        """Workers, busy, stuck, queued actors, compensations so far."""
        with self._lock:
            return PoolStats(
                workers=len(self._workers),
                busy=sum(1 for w in self._workers if w.busy_since is not None),
                stuck=self._stuck,
                queued=self._runq.qsize(),
                compensations_total=self._compensations,
            )

    def progressing(self, inbox: PooledInbox, hung_after_s: float) -> bool:
        """True when `inbox`'s actor is not hung: it waits for a worker, or is being served.

        Waiting: its inbox holds messages and no worker is inside its handlers (it is on the
        run queue behind other actors' work, e.g. thousands of actors starting at once).
        Served: a worker is inside one of its handlers, entered less than `hung_after_s` ago
        (it is working through its own backlog). False when a worker has been inside one
        handler for `hung_after_s` or more, when its inbox is empty, or when every worker is
        stuck (nothing is being served).
        """
        actor = inbox.actor
        now = time.monotonic()
        with self._lock:
            if self._closed or len(self._workers) <= self._stuck:
                return False
            for worker in self._workers:
                if worker.actor is actor:
                    since = worker.busy_since
                    return since is None or now - since < hung_after_s
        return not inbox.empty()

    # -- used by PooledActor / PooledInbox ------------------------------------

    def _attach(self, inbox: PooledInbox, actor: PooledActor) -> None:
        self.start()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"actor pool {self.name} is stopped")
            self._inboxes.add(inbox)
        inbox.attach(actor, self)

    def _detach(self, inbox: PooledInbox) -> None:
        with self._lock:
            self._inboxes.discard(inbox)

    def _submit(self, inbox: PooledInbox) -> None:
        self._runq.put(inbox)

    # -- workers ---------------------------------------------------------------

    def _target_locked(self) -> int:
        return min(self._size + self._stuck, self._max)

    def _spawn_locked(self) -> None:
        worker = PoolWorker(self, f"{self.name}-{next(self._names)}")
        self._workers.add(worker)
        worker.thread.start()

    def _work(self, worker: PoolWorker) -> None:
        budget = self.turn_budget
        get = self._runq.get
        while True:
            inbox = get()
            if inbox is None:
                with self._lock:
                    if self._closed or len(self._workers) > self._target_locked():
                        self._workers.discard(worker)
                        return
                continue
            actor = inbox.actor
            assert actor is not None
            try:
                more = actor._pool_turn(inbox, worker, budget)
            except BaseException:  # noqa: BLE001 - worker boundary: e.g. SystemExit in on_start must not kill the worker
                worker.end()
                actor._handle_failure(*sys.exc_info())  # logs, unregisters, marks stopped
                actor._pool_teardown(inbox)
                more = False
            if more:
                self._runq.put(inbox)

    def _unstick(self, worker: PoolWorker) -> None:
        with self._lock:
            self._unstick_locked(worker)

    def _unstick_locked(self, worker: PoolWorker) -> None:
        if not worker.stuck:
            return
        worker.stuck = False
        self._stuck -= 1
        held = time.monotonic() - (worker.stuck_token or 0.0)
        logger.info("%s: worker %s returned after %.1f s", self.name, worker.thread.name, held)
        if self._size + self._stuck < self._max:
            self._max_logged = False
        if len(self._workers) > self._target_locked():
            self._runq.put(None)  # one worker retires

    def _watch(self) -> None:
        interval = min(self.stuck_after_s / 4, 0.5)
        while not self._stopping.wait(interval):
            self._check_stuck(time.monotonic())

    def _check_stuck(self, now: float) -> None:
        with self._lock:
            if self._closed:
                return
            for worker in list(self._workers):
                since = worker.busy_since
                if worker.stuck:
                    if since != worker.stuck_token:
                        self._unstick_locked(worker)  # it returned while being judged
                    continue
                if since is None or now - since <= self.stuck_after_s:
                    continue
                worker.stuck = True
                worker.stuck_token = since
                self._stuck += 1
                logger.warning(
                    "%s: worker %s stuck for %.1f s in %s handling %s; adding a worker",
                    self.name,
                    worker.thread.name,
                    now - since,
                    worker.actor,
                    type(worker.message).__name__,
                )
                if len(self._workers) < self._target_locked():
                    self._spawn_locked()
                    self._compensations += 1
                elif not self._max_logged:
                    self._max_logged = True
                    logger.error(
                        "%s: %d workers stuck, at max_workers=%d: actors may starve", self.name, self._stuck, self._max
                    )
