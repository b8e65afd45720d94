"""StorageGateway: what every other part of fieldwatch holds to write and to ask storage.

Writes are appended to the gateway's own FIFO deque (never dropped) and the writer
actor is woken; the writer takes batches from the front and removes them only after
they committed, so a crash or restart of the writer loses nothing. The gateway also
keeps the counters metrics and /readyz read. (Generations are handed out by the
ledger, `fieldwatch.ledger`; the writer screens by its own index.)
"""

from __future__ import annotations

import bisect
import collections
import itertools
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from fieldwatch.errors import FieldwatchError, StorageError
from fieldwatch.storage.writes import Write

if TYPE_CHECKING:
    from fieldwatch.storage.batch import WriteFence

__all__ = ["COMMIT_BUCKETS", "Histogram", "StorageStats", "StorageGateway", "Wake"]

logger = logging.getLogger(__name__)

#: Upper bounds (seconds) of the commit-time histogram buckets; +Inf is implied.
COMMIT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True, slots=True)
class Wake:
    """Tell to the writer: writes are waiting in the gateway's deque."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """A Prometheus-style histogram snapshot: cumulative counts per upper bound."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]  # len(bounds) + 1, the last one is +Inf (== count)
    sum: float
    count: int


@dataclass(frozen=True, slots=True)
class StorageStats:
    """A consistent snapshot of the storage counters (metrics, /readyz)."""

    queue_depth: int
    writes_total: int
    write_errors_total: int
    discarded_total: int
    commit_seconds: Histogram
    ready: bool
    reason: str | None
    last_error: str | None


class StorageGateway:
    """Thread-safe front door to storage: submit writes, ask commands, read stats.

    `max_queue` bounds memory through back-pressure: producers of high-rate readings
    call `wait_capacity()` before submitting; state changes and events never wait.
    """

    #: cluster (SPEC section 10): the lease check the writer runs inside every batch's
    #: transaction (set by the cluster runner before any write); None: a single instance
    fence: WriteFence | None = None

    def __init__(self, *, max_queue: int = 100_000) -> None:
        self.max_queue = max_queue
        self._pending: collections.deque[Write] = collections.deque()
        self._lock = threading.Lock()
        self._capacity = threading.Condition(self._lock)
        self._attached = threading.Condition(self._lock)
        self._actor: pykka.ActorRef[Any] | None = None
        self._wake_pending = False
        self._writes_total = 0
        self._errors_total = 0
        self._discarded_total = 0
        self._buckets = [0] * (len(COMMIT_BUCKETS) + 1)
        self._commit_sum = 0.0
        self._commit_count = 0
        self._ready = False
        self._reason: str | None = "storage writer not started"
        self._last_error: str | None = None

    # -- producers -------------------------------------------------------------

    def submit(self, write: Write) -> None:
        """Queue one write (non-blocking, never dropped) and wake the writer."""
        with self._lock:
            self._pending.append(write)
            wake = self._actor if not self._wake_pending else None
            if wake is not None:
                self._wake_pending = True
        if wake is not None:
            self._tell_wake(wake)

    def submit_many(self, writes: Iterable[Write]) -> None:
        """Queue several writes in order (one lock round trip)."""
        with self._lock:
            self._pending.extend(writes)
            wake = self._actor if not self._wake_pending and self._pending else None
            if wake is not None:
                self._wake_pending = True
        if wake is not None:
            self._tell_wake(wake)

    def wait_capacity(self, timeout_s: float) -> bool:
        """Block until the queue is below max_queue (True) or `timeout_s` passed (False)."""
        with self._capacity:
            return self._capacity.wait_for(lambda: len(self._pending) < self.max_queue, timeout_s)

    # -- commands --------------------------------------------------------------

    def command(self, cmd: Any, timeout_s: float = 5.0) -> Any:
        """Ask the writer to run a storage command; StorageError on timeout or failure.

        NotFoundError, ConflictError and ValueError (bad input) pass through unchanged.
        A command that timed out may still run later. Waits (within `timeout_s`) for a
        writer that is starting or restarting.
        """
        with self._attached:
            self._attached.wait_for(lambda: self._actor is not None, timeout_s)
            actor = self._actor
        if actor is None:
            raise StorageError("storage writer is not running")
        try:
            return actor.ask(cmd, timeout=timeout_s)
        except pykka.Timeout as err:
            raise StorageError(f"storage command {type(cmd).__name__} timed out after {timeout_s} s") from err
        except pykka.ActorDeadError as err:
            raise StorageError("storage writer is not running") from err
        except (FieldwatchError, ValueError):
            raise
        except Exception as err:  # anything else from the writer is a storage failure
            raise StorageError(f"storage command {type(cmd).__name__} failed: {err}") from err

    # -- stats -----------------------------------------------------------------

    def stats(self) -> StorageStats:
        """A frozen snapshot of queue depth, counters, commit times and readiness."""
        with self._lock:
            cumulative = tuple(itertools.accumulate(self._buckets))
            return StorageStats(
                queue_depth=len(self._pending),
                writes_total=self._writes_total,
                write_errors_total=self._errors_total,
                discarded_total=self._discarded_total,
                commit_seconds=Histogram(COMMIT_BUCKETS, cumulative, self._commit_sum, self._commit_count),
                ready=self._ready,
                reason=self._reason,
                last_error=self._last_error,
            )

    @property
    def queue_depth(self) -> int:
        """Writes submitted and not yet committed."""
        with self._lock:
            return len(self._pending)

    # -- the writer's side -----------------------------------------------------

    def attach(self, actor_ref: pykka.ActorRef[Any]) -> None:
        """Make `actor_ref` the writer (a restarted writer takes over the same deque)."""
        with self._lock:
            self._actor = actor_ref
            self._wake_pending = bool(self._pending)
            self._attached.notify_all()
        if self._wake_pending:
            self._tell_wake(actor_ref)

    def detach(self, actor_ref: pykka.ActorRef[Any]) -> None:
        """Forget the writer if it is still `actor_ref` (its on_stop); writes stay queued."""
        with self._lock:
            if self._actor is actor_ref:
                self._actor = None
                self._wake_pending = False
                self._ready = False
                self._reason = "storage writer stopped"

    def woken(self) -> None:
        """The writer took a Wake: the next submit sends another."""
        with self._lock:
            self._wake_pending = False

    def wake(self) -> None:
        """Wake the writer unless a Wake is already on its way."""
        with self._lock:
            actor = self._actor if not self._wake_pending else None
            if actor is not None:
                self._wake_pending = True
        if actor is not None:
            self._tell_wake(actor)

    def peek(self, n: int) -> list[Write]:
        """The first `n` queued writes, left in place."""
        with self._lock:
            return list(itertools.islice(self._pending, n))

    def _is_writer(self, writer: pykka.ActorRef[Any] | None) -> bool:
        """Whether `writer` is the attached writer (None: unchecked). Caller holds the lock.

        A writer that was replaced while hung may wake up and finish its transaction:
        it must not remove writes from the queue its successor now owns (they would be
        lost); its batch stays queued and is written again (at least once, never lost).
        """
        if writer is None:
            return True
        return self._actor is not None and self._actor.actor_urn == writer.actor_urn

    def is_writer(self, writer: pykka.ActorRef[Any]) -> bool:
        """Whether `writer` is still the attached writer (a replaced one must not commit)."""
        with self._lock:
            return self._is_writer(writer)

    def committed(
        self,
        n: int,
        applied: int,
        discarded: int,
        seconds: float | None,
        *,
        writer: pykka.ActorRef[Any] | None = None,
    ) -> bool:
        """Remove the first `n` writes (they committed or were discarded) and count them.

        False (nothing removed) if `writer` is no longer the attached writer.
        """
        with self._lock:
            if not self._is_writer(writer):
                return False
            for _ in range(n):
                self._pending.popleft()
            self._writes_total += applied
            self._discarded_total += discarded
            if seconds is not None:
                self._buckets[bisect.bisect_left(COMMIT_BUCKETS, seconds)] += 1
                self._commit_sum += seconds
                self._commit_count += 1
            if len(self._pending) < self.max_queue:
                self._capacity.notify_all()
            return True

    def failed(self, error: str, reason: str, *, writer: pykka.ActorRef[Any] | None = None) -> None:
        """Count a failed write attempt and mark storage not ready with `reason`."""
        with self._lock:
            self._errors_total += 1
            self._last_error = error
            if self._is_writer(writer):
                self._ready = False
                self._reason = reason

    def set_ready(self, ready: bool, reason: str | None = None, *, writer: pykka.ActorRef[Any] | None = None) -> None:
        """Readiness as the writer sees it (reason when not ready)."""
        with self._lock:
            if self._is_writer(writer):
                self._ready = ready
                self._reason = None if ready else reason

    def _tell_wake(self, actor: pykka.ActorRef[Any]) -> None:
        try:
            actor.tell(Wake())
        except pykka.ActorDeadError:
            with self._lock:
                self._wake_pending = False
            logger.debug("storage writer is gone; writes stay queued for its successor")
