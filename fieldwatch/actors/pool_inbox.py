"""The mailbox of a `PooledActor`: a locked deque that schedules its actor on the pool.

The scheduling flag changes only under the inbox's lock, together with the
emptiness check (see `fieldwatch.actors.pool`), so an actor is on the run queue
at most once, and never left off it while it holds messages.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from pykka import ActorDeadError, messages

if TYPE_CHECKING:
    import pykka
    from pykka._envelope import Envelope

    from fieldwatch.actors.pool import PooledActor
    from fieldwatch.actors.pool_workers import ActorPool

__all__ = ["PooledInbox", "reply_dead"]


def reply_dead(envelope: Envelope[Any], actor: pykka.Actor | None) -> None:
    """Answer an envelope that reached a stopped actor, like pykka's loop teardown."""
    if envelope.reply_to is None:
        return
    if isinstance(envelope.message, messages._ActorStop):  # noqa: SLF001
        envelope.reply_to.set(None)  # "was being stopped": stop() returns True
        return
    ref = actor.actor_ref if actor is not None else "actor"
    err = ActorDeadError(f"{ref} stopped before handling the message")
    envelope.reply_to.set_exception(exc_info=(ActorDeadError, err, None))


class PooledInbox:
    """An actor's mailbox; puts its actor on the pool's run queue when work arrives."""

    __slots__ = ("_lock", "_items", "_scheduled", "_closed", "actor", "pool", "started")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[Envelope[Any]] = deque()
        self._scheduled = False
        self._closed = False
        self.actor: PooledActor | None = None
        self.pool: ActorPool | None = None
        self.started = False  # on_start has run; only the worker holding the turn touches it

    def put(self, envelope: Envelope[Any], /) -> None:
        """Append; schedule the actor unless it is already scheduled or not attached yet."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._items.append(envelope)
                if self._scheduled or self.pool is None:
                    return  # the worker holding the turn (or attach()) will see it
                self._scheduled = True
            pool = self.pool
        if closed:
            reply_dead(envelope, self.actor)  # raced with the actor's stop
        elif pool is not None:
            pool._submit(self)  # noqa: SLF001

    def get(self) -> Envelope[Any]:
        """Pop the oldest envelope (pykka's protocol); raises `queue.Empty` when empty."""
        with self._lock:
            if not self._items:
                raise queue.Empty
            return self._items.popleft()

    def empty(self) -> bool:
        """True when no envelope is waiting."""
        return not self._items

    def attach(self, actor: PooledActor, pool: ActorPool) -> None:
        """Bind to the actor's pool and schedule the first turn (on_start)."""
        with self._lock:
            self.actor = actor
            self.pool = pool
            self._scheduled = True
        pool._submit(self)  # noqa: SLF001

    def claim_idle(self) -> bool:
        """Hold the actor's turn if it is idle: started, nothing queued, not scheduled, open.

        The caller then runs actor code on its own thread, as a worker would, and gives the
        turn back with `end_turn()` (requeueing the actor if that returns True).
        """
        with self._lock:
            if self._scheduled or self._items or self._closed or not self.started or self.pool is None:
                return False
            self._scheduled = True
            return True

    def take(self) -> Envelope[Any] | None:
        """Next envelope of this turn, or None after unscheduling an empty inbox."""
        with self._lock:
            if self._items:
                return self._items.popleft()
            self._scheduled = False
            return None

    def end_turn(self) -> bool:
        """True (still scheduled: requeue) when envelopes remain, else unschedule."""
        with self._lock:
            if self._items:
                return True
            self._scheduled = False
            return False

    def close(self) -> list[Envelope[Any]]:
        """Refuse further envelopes (they are answered dead) and hand back the leftovers."""
        with self._lock:
            self._closed = True
            self._scheduled = False
            left = list(self._items)
            self._items.clear()
            return left
