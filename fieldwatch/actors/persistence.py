"""PersistenceActor: the one writer. Batches the gateway's queued writes into transactions.

Woken by `Wake`, it takes up to `batch.max_rows` writes from the front of the gateway's
deque, applies them in one transaction, removes them only after the commit, runs the
readings' on_commit(inserted) callbacks and wakes itself again if more remain (so asked commands
interleave with batches). Nothing waits on purpose: a batch starts as soon as the actor
is free, so under light load a write is committed well within `batch.max_delay_ms`, and
under heavy load batches grow towards `max_rows` by themselves. A failing database (locked, gone, revoked) keeps every write
queued, marks storage not ready and retries with capped exponential backoff through the
scheduler; a write that is itself invalid (IntegrityError, DataError) is isolated by
retrying the batch row by row and discarded with a log line.

Rollups (`storage.rollup_state`): a single instance's writer stores each bucket once it
closed, aggregated by the database from the committed rows, in a transaction of its own
after a commit; it reads the marks when it starts (before its first write) and after a
failed flush. A cluster's writer (`defer_rollups=False`) upserts every bucket per
transaction: with several instances writing, no writer could tell from marks it keeps
whether another closed a bucket meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.errors import FieldwatchError, StorageError
from fieldwatch.logpath import path_logger
from fieldwatch.policy import Backoff, StoragePolicy, backoff_delay
from fieldwatch.storage import sites
from fieldwatch.storage.batch import EndpointIndex, Fenced, apply_writes, split_fenced
from fieldwatch.storage.commands import Command
from fieldwatch.storage.db import (
    DATABASE_ERRORS,
    ROW_ERRORS,
    database_proxy,
    get_database,
    is_sqlite,
    reset_connection,
    write_transaction,
)
from fieldwatch.storage.gateway import StorageGateway, Wake
from fieldwatch.storage.recent import drop_orphans
from fieldwatch.storage.rollup_state import DeferredRollups, hold_marks
from fieldwatch.storage.writes import ReadingRecord, Write

__all__ = ["PersistenceActor"]

logger = logging.getLogger(__name__)

#: Errors caused by a write itself: the batch is retried row by row and only the
#: refused rows are discarded (logged). ValueError/TypeError come from the driver
#: refusing a value before the database sees it; as crashes they would restart the
#: writer forever on the same poison write.
_POISON_ERRORS: tuple[type[Exception], ...] = (*ROW_ERRORS, ValueError, TypeError)

#: Called after each commit with (seconds, rows) — benchmarks use it.
CommitListener = Callable[[float, int], None]


@dataclass(frozen=True, slots=True)
class _Retry:
    """Scheduled by the backoff: try the queued writes again."""


class _Replaced(Exception):
    """Raised inside a batch's transaction (rolled back) when this writer was replaced.

    A writer replaced while hung (the supervisor started a successor) may wake up mid-batch:
    its rows would be a second copy of writes the successor also commits.
    """


class PersistenceActor(SupervisedActor):
    """Serialises every write of fieldwatch into batched transactions (see module doc).

    Under the storage supervisor `ctx` is its place in the tree; started on its own
    (tests, benchmarks) it has a context without a parent. With `drain_on_stop_s` a
    normal stop first commits what is queued, for at most that long.
    """

    def __init__(
        self,
        gateway: StorageGateway,
        *,
        ctx: ChildContext | None = None,
        policy: StoragePolicy | None = None,
        scheduler: Scheduler | None = None,
        commit_listener: CommitListener | None = None,
        drain_on_stop_s: float = 0.0,
        defer_rollups: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        own_scheduler: Scheduler | None = None
        if scheduler is None:  # on its own: a timer thread of its own, started with the actor
            scheduler = own_scheduler = Scheduler("fieldwatch-storage-retry")
        super().__init__(ctx or ChildContext("writer", "root/storage/writer", 1, 0, None, scheduler))
        self.log = path_logger(logger, self.ctx.path)
        self._drain_on_stop_s = drain_on_stop_s
        self._gateway = gateway
        self._policy = policy or StoragePolicy()
        retry = self._policy.retry
        self._backoff = Backoff(initial_s=retry.initial_s, max_s=retry.max_s, multiplier=2.0, jitter=0.1)
        self._scheduler = scheduler
        self._own_scheduler = own_scheduler
        self._commit_listener = commit_listener
        self._index = EndpointIndex()
        self._index_loaded = False
        self._clock = clock
        self._rollups = DeferredRollups(defer=defer_rollups)
        self._retry_handle: TimerHandle | None = None
        self._failing_since: float | None = None
        self._attempt = 0

    # -- lifecycle -------------------------------------------------------------

    def started(self) -> None:
        """Take over the gateway's queue; load the endpoint index (or start retrying)."""
        if self._own_scheduler is not None:
            self._own_scheduler.start()
        self._gateway.attach(self.actor_ref)
        try:
            self._load_index()
            self._recover_rollups()
            self._gateway.set_ready(True, writer=self.actor_ref)
        except DATABASE_ERRORS as err:
            self._on_failure(err)

    def on_stop(self) -> None:
        """A normal stop: commit what is queued (bounded by drain_on_stop_s), then `stopping`."""
        deadline = time.monotonic() + self._drain_on_stop_s
        while self._gateway.queue_depth and time.monotonic() < deadline:
            if self._drain_batch(limit=10_000) is None:
                break  # the database is failing: what is left stays queued (and is logged at exit)
        try:
            self._flush_rollups()  # buckets that closed; open ones are stored by the next writer
        except Exception:  # stopping goes on: the next writer stores what closed from the rows
            self.log.exception("storing closed rollup buckets at stop failed")
        super().on_stop()

    def stopping(self) -> None:
        """Leave the queue to a successor; close this thread's connection."""
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        self._gateway.detach(self.actor_ref)
        self._reset()
        if self._own_scheduler is not None:
            self._own_scheduler.stop()

    def handle(self, message: Any) -> Any:
        """Wake and _Retry drain one batch; anything else is a Command (asked)."""
        if isinstance(message, Wake):
            if self._retry_handle is not None:
                # backing off: only the timer retries; the wake flag stays set so that
                # submits do not flood the mailbox with Wakes meanwhile
                return None
            self._gateway.woken()
            self._drain_batch()
            return None
        if isinstance(message, _Retry):
            self._retry_handle = None
            self._gateway.woken()
            self._drain_batch()
            return None
        return self._command(message)

    # -- writes ----------------------------------------------------------------

    def _load_index(self) -> None:
        """Seed the index (names, generations) from the database; GenerationStarted writes keep it current."""
        self._index.refresh(get_database())
        self._index_loaded = True

    def _drain_batch(self, limit: int | None = None) -> int | None:
        """Commit one batch from the front of the queue: writes removed, None if the database failed."""
        max_rows = self._policy.batch.max_rows if limit is None else min(limit, self._policy.batch.max_rows)
        batch = self._gateway.peek(max_rows)
        if not batch and self._failing_since is None:
            return 0
        removed = 0
        try:
            if not self._index_loaded:
                self._load_index()
            self._recover_rollups()
            if not batch:
                self._probe()
            else:
                try:
                    removed = self._commit(batch)
                except _POISON_ERRORS as err:
                    self.log.warning("a batch of %d writes was refused (%s): retrying row by row", len(batch), err)
                    for write in batch:
                        removed += self._commit_single(write)
        except DATABASE_ERRORS as err:
            self._on_failure(err)
            return None
        self._on_success()
        if removed:
            self._flush_rollups()
        if self._gateway.queue_depth and limit is None:
            self._gateway.wake()
        return removed

    def _recover_rollups(self) -> None:
        """Read the rollup marks if they may disagree with the database (at start, after a
        failed flush); a writer with a fence is a cluster's: every bucket upserted as it goes."""
        if self._gateway.fence is not None and self._rollups.defer:
            self._rollups = DeferredRollups(defer=False)
        if not self._rollups.loaded:
            self._rollups.recover(get_database(), self._clock())
            self._index.series.moved()  # recovery moved the staged rows (SQLite)

    def _flush_rollups(self) -> None:
        """Store the rollup buckets that closed (own transaction). After a failure the marks
        are read again before the next write (`recover`), and the next flush stores them."""
        rollups = self._rollups
        now = self._clock()
        if not rollups.due(now) or not self._gateway.is_writer(self.actor_ref):
            return  # nothing closed, or replaced: the successor read the marks and stores them
        try:
            rollups.flush(get_database(), now)
        except DATABASE_ERRORS as err:
            rollups.invalidate()
            self.log.warning("storing closed rollup buckets failed (%s): retried after the next write", err)
            return
        self._index.series.moved()  # the flush moved the staged rows first (SQLite): one move a minute, not two

    @staticmethod
    def _reset() -> None:
        """Drop this thread's connection (reconnect on the next try), if a database is bound."""
        db = database_proxy.obj
        if db is not None:
            reset_connection(db)

    def _probe(self) -> None:
        """Nothing is queued but storage was failing: check it takes a write transaction."""
        db = get_database()
        with write_transaction(db):
            db.execute_sql("SELECT 1")

    def _commit(self, batch: Sequence[Write]) -> int:
        """Screen, apply and commit `batch`, remove it from the queue, run the callbacks.

        Returns how many writes left the queue (0 if this writer was replaced meanwhile).
        """
        db = get_database()
        screened = self._index.screen(db, batch)
        start = time.perf_counter()
        stored: list[tuple[ReadingRecord, bool]] = []
        fence = self._gateway.fence
        fenced: Fenced | None = None
        applied = len(screened.accepted)
        if screened.accepted:
            series = self._index.series
            try:
                with write_transaction(db):
                    if self._rollups.defer:
                        hold_marks(db)
                    if not self._gateway.is_writer(self.actor_ref):
                        raise _Replaced  # a successor owns the queue (and the marks)
                    accepted, epochs = screened.accepted, None
                    if fence is not None:  # cluster: leave out the writes of sites no longer held
                        fenced = split_fenced(db, fence, self._index, screened)
                        accepted, epochs, applied = fenced.kept, fenced.endpoint_epochs, len(fenced.kept)
                    stored = apply_writes(
                        db, accepted, self._index.names, time.time(), series, epochs, self._rollups
                    )
            except BaseException as err:
                series.discard()  # ids and sequence numbers of the rolled-back batch
                if not isinstance(err, _Replaced):
                    raise
                self.log.warning("replaced before committing: the batch stays queued for the new writer")
                return 0
            series.commit()
        elapsed = time.perf_counter() - start
        self._index.committed(screened)
        discarded = len(screened.stale) + len(screened.orphans) + len(screened.accepted) - applied
        seconds = elapsed if screened.accepted else None
        if not self._gateway.committed(len(batch), applied, discarded, seconds, writer=self.actor_ref):
            self.log.warning("replaced while writing: the batch stays queued for the new writer")
            return 0
        if fence is not None and fenced is not None and (fenced.counts or fenced.passed):
            fence.fenced(fenced.counts, fenced.passed)  # counted and logged once the batch left the queue
        if self._commit_listener is not None and screened.accepted:
            self._commit_listener(elapsed, applied)
        for reading, inserted in stored:
            if reading.on_commit is not None:
                try:
                    reading.on_commit(inserted)
                except Exception:  # supervision boundary: a producer's callback must not stop the writer
                    self.log.exception("on_commit callback of a reading failed")
        return len(batch)

    def _commit_single(self, write: Write) -> int:
        """Commit one write on its own; discard it (logged) if the row itself is refused."""
        try:
            return self._commit([write])
        except _POISON_ERRORS as err:
            self.log.error("discarding %r: the database refused it: %s", write, err)
            return 1 if self._gateway.committed(1, 0, 1, None, writer=self.actor_ref) else 0

    def _on_failure(self, err: Exception) -> None:
        """Keep everything queued, mark not ready, schedule a retry with capped backoff."""
        message = f"{type(err).__name__}: {err}".strip()
        self._gateway.failed(message, f"storage write failing: {message}", writer=self.actor_ref)
        self._reset()
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            self.log.error(
                "storage write failed (%s); %d writes kept queued, retrying with backoff",
                message,
                self._gateway.queue_depth,
            )
        else:
            self.log.debug("storage write retry %d failed: %s", self._attempt, message)
        delay = backoff_delay(self._backoff, self._attempt)
        self._attempt += 1
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        self._retry_handle = self._scheduler.tell_later(delay, self.actor_ref, _Retry())

    def _on_success(self) -> None:
        if self._failing_since is not None:
            self.log.info(
                "storage writes recovered after %.1f s (%d attempts); %d writes queued",
                time.monotonic() - self._failing_since,
                self._attempt,
                self._gateway.queue_depth,
            )
            self._failing_since = None
            self._attempt = 0
            if self._retry_handle is not None:
                self._retry_handle.cancel()
                self._retry_handle = None
            self._gateway.woken()  # Wakes were held back while failing: let them flow again
        self._gateway.set_ready(True, writer=self.actor_ref)

    # -- commands --------------------------------------------------------------

    def _command(self, cmd: Command) -> Any:
        """Commit the writes queued before `cmd`, then run it in its own transaction."""
        remaining = self._gateway.queue_depth
        while remaining > 0:
            removed = self._drain_batch(limit=remaining)
            if removed is None:
                raise StorageError(f"storage unavailable: {self._gateway.stats().last_error}")
            if removed == 0:  # replaced by another writer: it owns the queue now
                break
            remaining -= removed
        db = get_database()
        try:
            with write_transaction(db):
                result = sites.execute(cmd, time.time())
                if is_sqlite(db):  # the staged rows of endpoints it deleted, in its transaction (a new
                    drop_orphans(db)  # series may take a deleted one's id); a scan of ~a minute of rows
            self._index.refresh(db)  # sites and endpoints the command created or deleted
        except (FieldwatchError, ValueError, TypeError):
            raise
        except ROW_ERRORS as err:
            raise StorageError(f"{type(cmd).__name__} refused by the database: {err}") from err
        except DATABASE_ERRORS as err:
            self._on_failure(err)
            raise StorageError(f"{type(cmd).__name__} failed: {err}") from err
        self._index_loaded = True
        if self._gateway.queue_depth:
            self._gateway.wake()
        return result
