"""RetentionActor: a low-priority actor deleting what each retention tier let expire.

Every `interval_s` (at most a minute, so what expired is gone within a minute) it
starts a pass (`storage.retention.Pass`) that deletes one small chunk per message,
pausing briefly between chunks so the writer actor gets the (SQLite) write lock in
between. `RunRetention` (asked) runs a whole pass at once. Each pass logs what it
deleted and how long it took; `last_pass` keeps the figures for benchmarks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.logpath import path_logger
from fieldwatch.storage.db import DATABASE_ERRORS, database_proxy, get_database, reset_connection
from fieldwatch.storage.retention import DEFAULT_CHUNK_ROWS, TARGETS, Pass, Retention

__all__ = ["RetentionActor", "RunRetention", "DEFAULT_INTERVAL_S"]

logger = logging.getLogger(__name__)

#: How often a pass starts: retention runs at least once a minute (SPEC §3).
DEFAULT_INTERVAL_S = 30.0
_MAX_RETRY_S = 30.0


@dataclass(frozen=True, slots=True)
class RunRetention:
    """Ask: run a full retention pass now; answers {table: rows deleted}."""


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: start a pass unless one is running."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Delete the next chunk of the running pass."""


class RetentionActor(SupervisedActor):
    """Deletes expired rows of every tier in chunks (a tier of 0 days or less is kept for ever).

    `ctx` as for the writer: its place under the storage supervisor, or none of its own.
    """

    def __init__(
        self,
        *,
        retention: Retention,
        ctx: ChildContext | None = None,
        scheduler: Scheduler | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        first_delay_s: float = 5.0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        pause_s: float = 0.01,
        clock: Callable[[], float] = time.time,
    ) -> None:
        own_scheduler: Scheduler | None = None
        if scheduler is None:  # on its own: a timer thread of its own, started with the actor
            scheduler = own_scheduler = Scheduler("fieldwatch-retention")
        super().__init__(ctx or ChildContext("retention", "root/storage/retention", 1, 0, None, scheduler))
        self.log = path_logger(logger, self.ctx.path)
        self._retention = retention
        self._scheduler = scheduler
        self._own_scheduler = own_scheduler
        self._interval_s = interval_s
        self._first_delay_s = first_delay_s
        self._chunk_rows = chunk_rows
        self._pause_s = pause_s
        self._clock = clock
        self._timer: TimerHandle | None = None
        self._pass: Pass | None = None
        self._started = 0.0
        self._failing = False
        self._retry_s = 0.0

    def _enabled(self) -> bool:
        r = self._retention
        return any(days > 0 for days in (r.raw_days, r.minute_days, r.hour_days, r.events_days))

    def started(self) -> None:
        """Start the periodic timer (nothing to do when every tier is kept for ever)."""
        if not self._enabled():
            self.log.info("retention off: keeping every reading and event")
            return
        if self._own_scheduler is not None:
            self._own_scheduler.start()
        ref = self.actor_ref
        self._timer = self._scheduler.every(
            self._interval_s, lambda: _tell(ref, _Tick()), first_delay_s=self._first_delay_s
        )

    def stopping(self) -> None:
        """Stop the timer and close this thread's connection."""
        if self._timer is not None:
            self._timer.cancel()
        if self._own_scheduler is not None:
            self._own_scheduler.stop()
        db = database_proxy.obj
        if db is not None:
            reset_connection(db)

    def handle(self, message: Any) -> Any:
        """_Tick starts a pass, _Chunk continues it, RunRetention runs one synchronously."""
        if isinstance(message, RunRetention):
            return self._run_all()
        if isinstance(message, _Tick):
            if self._pass is None:
                self._pass = Pass(self._retention, self._clock(), self._chunk_rows)
                self._started = time.perf_counter()
                self._chunk()
            return None
        if isinstance(message, _Chunk):
            self._chunk()
        return None

    def _run_all(self) -> dict[str, int]:
        run = Pass(self._retention, self._clock(), self._chunk_rows)
        started = time.perf_counter()
        db = get_database()
        while not run.step(db):
            pass
        self._log_pass(run.deleted, time.perf_counter() - started)
        return {target.table: run.deleted.get(target.table, 0) for target in TARGETS}

    def _chunk(self) -> None:
        run = self._pass
        if run is None:
            return
        try:
            done = run.step(get_database())
        except DATABASE_ERRORS as err:
            # locked by a busy writer, or the database is gone: the pass keeps its place and
            # its chunk is tried again after a capped backoff (a failed chunk rolled back whole)
            reset_connection(get_database())
            if not self._failing:
                self.log.warning("retention chunk failed (%s); retrying with backoff", err)
            self._failing = True
            self._retry_s = min(_MAX_RETRY_S, self._retry_s * 2 if self._retry_s else 0.5)
            self._scheduler.tell_later(self._retry_s, self.actor_ref, _Chunk())
            return
        self._retry_s = 0.0
        if self._failing:
            self.log.info("retention works again")
            self._failing = False
        if done:
            self._log_pass(run.deleted, time.perf_counter() - self._started)
            self._pass = None
            return
        self._scheduler.tell_later(self._pause_s, self.actor_ref, _Chunk())

    def _log_pass(self, deleted: dict[str, int], seconds: float) -> None:
        if any(deleted.values()):
            self.log.info(
                "retention pass (%.3f s): deleted %s",
                seconds,
                ", ".join(f"{n} {table} rows" for table, n in deleted.items() if n),
            )


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass
