"""A pooled pykka runtime: one actor per endpoint without one OS thread per actor.

pykka's `ThreadingActor` runs every actor on its own thread. `PooledActor` keeps
pykka's semantics (ordered, one-at-a-time handling, on_start/on_stop/on_failure,
`ActorDeadError` after stop, registry) but its mailbox is served by a shared
`ActorPool` of worker threads, so an idle actor costs a deque and a lock.

Scheduling invariant: an inbox is *scheduled* (on the run queue, or held by one
worker) whenever it holds messages. The flag only changes under the inbox's lock,
together with the emptiness check, so a `put()` racing with the end of a turn
either finds the flag still set (the holding worker sees the message) or finds
it cleared and enqueues the actor itself: no lost wake-up, never two workers.

The worker threads, their run queue and the compensation of stuck workers are
`ActorPool`'s (`fieldwatch.actors.pool_workers`, re-exported here).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, ClassVar, cast

import pykka
from pykka import ActorRegistry, ThreadingFuture

from fieldwatch.actors.pool_inbox import PooledInbox, reply_dead
from fieldwatch.actors.pool_workers import ActorPool, PoolStats, PoolWorker

if TYPE_CHECKING:
    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope

__all__ = ["ActorPool", "PoolStats", "PooledActor", "call_if_idle", "progressing"]

logger = logging.getLogger(__name__)


def progressing(ref: pykka.ActorRef[Any], hung_after_s: float) -> bool:
    """True when `ref` is a pooled actor that is queued for a worker or being served (not hung).

    A supervisor asks this before judging a health check that was not answered in time:
    a check queued behind other actors' work, or behind the actor's own messages while it
    works through them, says nothing about a hang (see `ActorPool.progressing`).
    """
    inbox = ref.actor_inbox
    if not isinstance(inbox, PooledInbox) or inbox.pool is None or ref.actor_stopped.is_set():
        return False
    return inbox.pool.progressing(inbox, hung_after_s)


def call_if_idle(ref: pykka.ActorRef[Any], method: str, allowed_by: str) -> tuple[bool, Any]:
    """(True, result) of the pooled actor's `method()` run on the caller's thread while the actor is
    idle (its turn held, so nothing of it runs meanwhile); (False, None) when it is not a pooled
    actor whose attribute `allowed_by` is true, or is stopping, queued, running or not started
    yet. `method` must be quick and never block: the caller (a supervisor) waits for it.
    """
    inbox = ref.actor_inbox
    if (
        type(inbox) is not PooledInbox
        or not getattr(inbox.actor, allowed_by, False)
        or ref.actor_stopped.is_set()
        or not inbox.claim_idle()
    ):
        return False, None
    try:
        return True, getattr(inbox.actor, method)()
    finally:
        if inbox.end_turn() and inbox.pool is not None:  # messages came in meanwhile
            inbox.pool._submit(inbox)  # noqa: SLF001


class PooledActor(pykka.Actor):
    """A pykka actor whose mailbox is served by an `ActorPool` instead of its own thread.

    Semantics match `ThreadingActor` (see the module docstring). Set the class
    attribute `pool` to run on another pool than `ActorPool.default()`. To combine
    with a class derived from ThreadingActor, list PooledActor first in the bases.
    Don't block on asks to other pooled actors from a handler: it holds a worker.
    """

    pool: ClassVar[ActorPool | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("_create_actor_inbox", "_create_future", "_start_actor_loop"):
            if getattr(cls, name) is not getattr(PooledActor, name):
                raise TypeError(f"{cls.__name__}: {name} is not PooledActor's; put PooledActor first in the bases")

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        return PooledInbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return ThreadingFuture()

    def _start_actor_loop(self) -> None:
        pool = type(self).pool or ActorPool.default()
        try:
            pool._attach(cast(PooledInbox, self.actor_inbox), self)
        except RuntimeError:
            ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            raise

    def _pool_turn(self, inbox: PooledInbox, worker: PoolWorker, budget: int) -> bool:
        """Run on_start if due, then up to `budget` messages; True: requeue me."""
        stopped = self.actor_stopped
        if not inbox.started:
            inbox.started = True
            worker.begin(self, "on_start")
            self._actor_loop_setup()
            worker.end()
        for _ in range(budget):
            if stopped.is_set():
                break
            envelope = inbox.take()
            if envelope is None:
                return False
            worker.begin(self, envelope.message)
            self._handle_envelope(envelope)
            worker.end()
        if stopped.is_set():
            self._pool_teardown(inbox)
            return False
        return inbox.end_turn()

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        """One step of pykka's `_actor_loop_running`, same outcomes."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:  # pykka's semantics: to the asker, or on_failure + stop
            if envelope.reply_to is not None:
                logger.info("Exception returned from %s to caller:", self, exc_info=sys.exc_info())
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001 - as pykka: a failing on_failure is logged
                    self._handle_failure(*sys.exc_info())
        except BaseException:  # noqa: BLE001 - as pykka: stop everything (without blocking this worker)
            logger.debug("%r in %s. Stopping all actors.", sys.exc_info()[1], self)
            self._stop()
            ActorRegistry.stop_all(block=False)

    def _pool_teardown(self, inbox: PooledInbox) -> None:
        """Close the inbox and answer what is left with ActorDeadError (pykka's teardown)."""
        for envelope in inbox.close():
            reply_dead(envelope, self)
        if inbox.pool is not None:
            inbox.pool._detach(inbox)
