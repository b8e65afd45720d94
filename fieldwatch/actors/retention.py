"""RetentionActor: a low-priority actor trimming old readings, events and parse errors.

Every `interval_s` it starts a pass that deletes rows older than `retention_days` one
small chunk per message, pausing briefly between chunks so the writer actor gets the
(SQLite) write lock in between. `RunRetention` (asked) runs a whole pass at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.storage.db import DATABASE_ERRORS, database_proxy, get_database, reset_connection
from fieldwatch.storage.retention import DEFAULT_CHUNK_ROWS, RETAINED, delete_chunk, purge

__all__ = ["RetentionActor", "RunRetention"]

logger = logging.getLogger(__name__)

_DAY_S = 86_400.0
_PATH = "[storage/retention]"


@dataclass(frozen=True, slots=True)
class RunRetention:
    """Ask: run a full retention pass now; answers {table: rows deleted}."""


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: start a pass unless one is running."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Delete the next chunk of the running pass."""


class RetentionActor(pykka.ThreadingActor):
    """Deletes rows older than `retention_days` in chunks (0 or less: keep everything)."""

    def __init__(
        self,
        *,
        retention_days: float,
        scheduler: Scheduler | None = None,
        interval_s: float = 600.0,
        first_delay_s: float = 60.0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        pause_s: float = 0.01,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._days = retention_days
        self._scheduler = scheduler
        self._own_scheduler: Scheduler | None = None
        self._interval_s = interval_s
        self._first_delay_s = first_delay_s
        self._chunk_rows = chunk_rows
        self._pause_s = pause_s
        self._clock = clock
        self._timer: TimerHandle | None = None
        self._cutoff: float | None = None
        self._table = 0
        self._deleted: dict[str, int] = {}
        self._failing = False

    def on_start(self) -> None:
        """Start the periodic timer (nothing to do when retention is off)."""
        if self._days <= 0:
            logger.info("%s retention off: keeping every reading and event", _PATH)
            return
        if self._scheduler is None:
            self._own_scheduler = Scheduler("fieldwatch-retention")
            self._own_scheduler.start()
            self._scheduler = self._own_scheduler
        ref = self.actor_ref
        self._timer = self._scheduler.every(
            self._interval_s, lambda: _tell(ref, _Tick()), first_delay_s=self._first_delay_s
        )

    def on_stop(self) -> None:
        """Stop the timer and close this thread's connection."""
        if self._timer is not None:
            self._timer.cancel()
        if self._own_scheduler is not None:
            self._own_scheduler.stop()
        db = database_proxy.obj
        if db is not None:
            reset_connection(db)

    def on_receive(self, message: Any) -> Any:
        """_Tick starts a pass, _Chunk continues it, RunRetention runs one synchronously."""
        if isinstance(message, RunRetention):
            return self._run_all()
        if isinstance(message, _Tick):
            if self._cutoff is None and self._days > 0:
                self._cutoff = self._clock() - self._days * _DAY_S
                self._table = 0
                self._deleted = {}
                self._chunk()
            return None
        if isinstance(message, _Chunk):
            self._chunk()
        return None

    def _run_all(self) -> dict[str, int]:
        cutoff = self._clock() - self._days * _DAY_S
        if self._days <= 0:
            return {table: 0 for table, _ in RETAINED}
        deleted = purge(get_database(), cutoff, self._chunk_rows)
        self._log_pass(deleted)
        return deleted

    def _chunk(self) -> None:
        if self._cutoff is None:
            return
        table, column = RETAINED[self._table]
        try:
            n = delete_chunk(get_database(), table, column, self._cutoff, self._chunk_rows)
        except DATABASE_ERRORS as err:
            reset_connection(get_database())
            if not self._failing:
                logger.warning("%s retention pass abandoned (%s); the next one retries", _PATH, err)
            self._failing = True
            self._cutoff = None
            return
        if self._failing:
            logger.info("%s retention works again", _PATH)
            self._failing = False
        self._deleted[table] = self._deleted.get(table, 0) + n
        if n < self._chunk_rows:
            self._table += 1
            if self._table >= len(RETAINED):
                self._log_pass(self._deleted)
                self._cutoff = None
                return
        assert self._scheduler is not None
        self._scheduler.tell_later(self._pause_s, self.actor_ref, _Chunk())

    def _log_pass(self, deleted: dict[str, int]) -> None:
        if any(deleted.values()):
            logger.info(
                "%s retention (%g days): deleted %s",
                _PATH,
                self._days,
                ", ".join(f"{n} {table} rows" for table, n in deleted.items() if n),
            )


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass
