"""The base of every supervised actor: reports exits and answers health checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pykka

from fieldwatch.actors.messages import HEALTHY, ChildExited, Health, HealthCheck, HealthReport
from fieldwatch.actors.scheduler import Scheduler

__all__ = ["ChildContext", "SupervisedActor"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChildContext:
    """What a supervisor hands to the child it starts."""

    child_id: str
    path: str  # e.g. "root/sites/lutete-borehole/plc"
    generation: int
    restarts: int
    parent: pykka.ActorRef[Any] | None
    scheduler: Scheduler


class SupervisedActor(pykka.ThreadingActor):
    """A pykka actor that tells its supervisor when it exits, and answers HealthCheck.

    Subclasses implement `started()`, `stopping()`, `check_health()` and `handle()`
    instead of pykka's hooks. pykka does not route an exception in `on_start` to
    `on_failure`; this class does, so a child that fails to start is noticed.
    """

    def __init__(self, ctx: ChildContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._exit_reported = False

    # -- hooks for subclasses --------------------------------------------------

    def started(self) -> None:
        """Called on the actor's thread before any message."""

    def stopping(self) -> None:
        """Called on the actor's thread when it stops (normally or after a failure)."""

    #: True: `check_health()` is quick and never blocks, so a supervisor may call it on its own
    #: thread while it holds the turn of this idle pooled actor (`pool.call_if_idle`), instead
    #: of a HealthCheck message and its report (issue 17: at 10,000 pooled endpoints the round
    #: trips were a fifth of the daemon's CPU). A busy, queued or hung actor still gets the
    #: message, so a hang is still found by its timeout.
    inline_health_check: bool = False

    def check_health(self) -> Health:
        """Answer a health check; the default: answering at all is healthy."""
        return HEALTHY

    def health_answer(self) -> Health:
        """`check_health()`, with an exception as an unhealthy answer."""
        try:
            return self.check_health()
        except Exception as err:  # noqa: BLE001 - a failing check is an unhealthy answer, not a crash
            return Health(False, f"{type(err).__name__}: {err}")

    def handle(self, message: Any) -> Any:
        """Handle any other message."""
        logger.warning("%s: unexpected message %r", self.ctx.path, message)
        return None

    # -- pykka hooks -----------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.started()
        except Exception as err:
            # pykka would only log this and stop the actor: tell the supervisor.
            self._report_exit(False, type(err).__name__, str(err))
            raise

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stopping()
        except Exception:  # supervision boundary: cleanup of a failed actor
            logger.exception("%s: cleanup after failure failed", self.ctx.path)
        self._report_exit(
            False,
            exception_type.__name__ if exception_type else "Exception",
            str(exception_value) if exception_value is not None else "",
        )

    def on_stop(self) -> None:
        try:
            self.stopping()
        finally:
            self._report_exit(True, None, "")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HealthCheck):
            health = self.health_answer()
            try:
                message.reply_to.tell(
                    HealthReport(self.ctx.child_id, self.ctx.generation, message.seq, health)
                )
            except pykka.ActorDeadError:
                pass
            return health
        return self.handle(message)

    # -- helpers ---------------------------------------------------------------

    def _report_exit(self, normal: bool, exc_type: str | None, message: str) -> None:
        if self._exit_reported or self.ctx.parent is None:
            return
        self._exit_reported = True
        try:
            self.ctx.parent.tell(
                ChildExited(self.ctx.child_id, self.ctx.generation, normal, exc_type, message[:500])
            )
        except pykka.ActorDeadError:
            pass
