"""The base of every connection actor: owns the endpoint's state machine.

One class owns availability (as Home Assistant's ping integration does): it
logs an error once on entering a failure state and info on recovery, never a
line per retry; it persists every transition in order, opens and resolves
alerts, and keeps the status board true. Protocol actors implement
`connect()`, `disconnect()` and `on_message()` and call the helpers below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from fieldwatch import states
from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.messages import Health
from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.actors.supervisor import backoff_delay
from fieldwatch.logpath import PathLogger
from fieldwatch.policy import ChildPolicy
from fieldwatch.status import StatusBoard
from fieldwatch.storage import writes

__all__ = ["ConnectionActor", "EndpointContext", "Reconnect", "PathLogger"]

logger = logging.getLogger(__name__)

#: The reason the controller shows while an actor it just spawned has not started yet.
START_REQUESTED = "start requested"

_SEVERITY = {states.DOWN: "critical", states.FAULTY: "critical", states.STALE: "warning"}


@dataclass(frozen=True, slots=True)
class EndpointContext:
    """The collaborators and identity of one endpoint actor (same for every generation)."""

    endpoint_id: int
    site: str
    config: Any  # fieldwatch.config.model.EndpointConfig
    policy: ChildPolicy
    board: StatusBoard
    storage: Any  # fieldwatch.storage.gateway.StorageGateway
    scheduler: Scheduler


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Self-message: try to (re)connect now (sent at start and after each backoff)."""

    generation: int


class ConnectionActor(SupervisedActor):
    """One endpoint's actor; a new instance (generation) per (re)start by its supervisor."""

    kind: ClassVar[str] = "?"

    def __init__(self, child: ChildContext, endpoint: EndpointContext) -> None:
        super().__init__(child)
        self.ep = endpoint
        self.config = endpoint.config
        self.options = endpoint.config.options
        self.generation = child.generation
        self.path = child.path.removeprefix("root/")
        self.log = PathLogger(logging.getLogger(type(self).__module__), {"path": self.path})
        self._timers: list[TimerHandle] = []
        self._attempt = 0
        self._connected_at: float | None = None
        self._touch_stored_at = 0.0
        status = endpoint.board.get(endpoint.endpoint_id)
        self.state = status.state if status else states.DISABLED
        self.state_since = status.since if status else time.time()
        self.down_since = status.down_since if status else None
        self.last_data_at = status.last_data_at if status else None
        self.reason: str | None = status.reason if status else None
        if self.state == states.CONNECTING and self.reason == START_REQUESTED:
            # The controller showed `connecting` for a start it requested; for the stored
            # history this instance starts from `disabled` (so "disabled->connecting" is logged).
            self.state = states.DISABLED

    # -- hooks for protocol actors -----------------------------------------------

    def connect(self) -> None:
        """Try to connect; call connected() or retry_later() (or raise: a crash)."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Release the connection; must not raise and must be bounded in time."""

    def on_message(self, message: Any) -> Any:
        """Protocol messages (timer ticks, library callbacks told to us)."""
        return super().handle(message)

    def stale_after_s(self) -> float | None:
        """Freshness bound for readers; None = the state alone is the truth."""
        value = getattr(self.options, "stale_after_s", None)
        return float(value) if value else None

    # -- life --------------------------------------------------------------------

    def started(self) -> None:
        self.ep.storage.submit(writes.Counters(self.ep.endpoint_id, self.generation, self.ctx.restarts, self._reconnects()))
        if self.state not in (states.DOWN, states.FAULTY):  # a retry keeps its failure state
            self.transition(states.CONNECTING, "starting" if self.ctx.restarts == 0 else "restarted by supervisor")
        self.actor_ref.tell(Reconnect(self.generation))

    def stopping(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        try:
            self.disconnect()
        except Exception:  # cleanup boundary: a failing close must not mask the stop
            self.log.exception("disconnect failed")

    def handle(self, message: Any) -> Any:
        if isinstance(message, Reconnect):
            if message.generation == self.generation:
                self.connect()
            return None
        return self.on_message(message)

    def check_health(self) -> Health:
        stale = self.stale_after_s()
        if self.state == states.STALE and stale and time.time() - self.state_since >= stale:
            return Health(False, f"stale for {time.time() - self.state_since:.0f}s")
        return Health(True)

    # -- helpers: state ----------------------------------------------------------

    def transition(self, state: str, reason: str | None = None, *, exc_type: str | None = None) -> None:
        """Move to `state`; persist, event, alert, log once. Same state+reason is a no-op."""
        if state == self.state and reason == self.reason:
            return
        now = time.time()
        previous = self.state
        if state == previous:  # same state, new reason: store it quietly
            self.reason = reason
            self._publish_state(now, event_level="debug", exc_type=exc_type, quiet=True)
            return
        self.state, self.state_since, self.reason = state, now, reason
        if state == states.DOWN:
            self.down_since = now if previous != states.DOWN else self.down_since
        elif state == states.UP:
            self.down_since = None
        if state in states.ALERTING:
            self.log.error("%s -> %s: %s", previous, state, reason)
        elif previous in states.ALERTING:
            self.log.info("%s -> %s (recovered): %s", previous, state, reason or "")
        else:
            self.log.info("%s -> %s: %s", previous, state, reason or "")
        level = "error" if state in (states.DOWN, states.FAULTY) else "warning" if state == states.STALE else "info"
        self._publish_state(now, event_level=level, exc_type=exc_type, previous=previous)
        # Alerts: one per (endpoint, condition); leaving a failure state resolves it.
        # Reaching `up` resolves every failure condition, also ones opened by an earlier
        # incarnation of the daemon (resolving is idempotent in storage).
        for condition in (states.DOWN, states.STALE, states.FAULTY):
            if condition != state and (condition == previous or state == states.UP):
                self.resolve_alert(condition)
        if state in states.ALERTING and previous != state:
            self.open_alert(state, _SEVERITY[state], reason or state)

    def _publish_state(
        self, now: float, *, event_level: str, exc_type: str | None, previous: str | None = None, quiet: bool = False
    ) -> None:
        ep = self.ep
        ep.board.update(
            ep.endpoint_id,
            self.generation,
            state=self.state,
            since=self.state_since,
            reason=self.reason,
            down_since=self.down_since,
            last_data_at=self.last_data_at,
            fresh_within_s=self.stale_after_s(),
        )
        ep.storage.submit(
            writes.StateChange(
                ep.endpoint_id, self.generation, self.state, self.state_since, self.reason, self.down_since, self.last_data_at
            )
        )
        message = self.reason or ""
        event = "state" if quiet else f"{previous}->{self.state}"
        self.event(event_level, event, message, exc_type=exc_type, attempt=self._attempt or None)

    def connected(self, reason: str | None = None) -> None:
        """The link is established (and verified): count reconnects, reset backoff, go `up`."""
        self._connected_at = time.monotonic()
        if self.ep.board.mark_connected(self.ep.endpoint_id, self.generation):
            self.ep.storage.submit(
                writes.Counters(self.ep.endpoint_id, self.generation, self.ctx.restarts, self._reconnects())
            )
        self._attempt = 0
        if self.last_data_at is None or self.stale_after_s() is None:
            self.last_data_at = time.time()
        self.transition(states.UP, reason or "connected")

    def retry_later(self, state: str, reason: str, *, exc_type: str | None = None) -> float:
        """Enter `down` or `faulty` and schedule a reconnect after the backoff (faulty: the maximum)."""
        backoff = self.ep.policy.backoff
        if self._connected_at is not None and time.monotonic() - self._connected_at >= backoff.reset_after_s:
            self._attempt = 0
        self._connected_at = None
        delay = backoff.max_s if state == states.FAULTY else backoff_delay(backoff, self._attempt)
        self._attempt += 1
        if state == self.state and reason == self.reason:
            self.log.debug("attempt %d failed again (%s); next in %.1fs", self._attempt, reason, delay)
        self.transition(state, reason, exc_type=exc_type)
        self.after(delay, Reconnect(self.generation))
        return delay

    def data_received(self, at: float | None = None) -> None:
        """Fresh data arrived: remember when, and leave `stale` for `up`."""
        self.last_data_at = at or time.time()
        self.ep.board.update(self.ep.endpoint_id, self.generation, last_data_at=self.last_data_at)
        # The board is the live truth for readers; the stored last_data_at (for history and
        # restarts) is refreshed at most once a second per endpoint, and with every state change.
        if self.last_data_at - self._touch_stored_at >= 1.0:
            self._touch_stored_at = self.last_data_at
            self.ep.storage.submit(writes.Touch(self.ep.endpoint_id, self.generation, self.last_data_at))
        if self.state == states.STALE:
            self.transition(states.UP, "data flowing again")

    def _reconnects(self) -> int:
        status = self.ep.board.get(self.ep.endpoint_id)
        return status.reconnects if status else 0

    # -- helpers: records --------------------------------------------------------

    def event(
        self, level: str, event: str, message: str, *, exc_type: str | None = None, attempt: int | None = None
    ) -> None:
        """Append to the connection event log (through the persistence actor)."""
        self.ep.storage.submit(
            writes.EventRecord(
                self.ep.endpoint_id,
                self.generation,
                time.time(),
                level,
                event,
                message[:2000],
                exc_type,
                attempt,
                self.ep.site,
                self.config.name,
            )
        )

    def store_reading(
        self,
        name: str,
        value_num: float | None,
        value_text: str | None = None,
        *,
        quality: str = "Good",
        source_time: float | None = None,
        device: str | None = None,
        msg_key: str | None = None,
        aux_name: str | None = None,
        aux_num: float | None = None,
        on_commit: Callable[[bool], None] | None = None,
        gauge: bool = True,
    ) -> None:
        """Queue a reading for storage (`aux_*`: a companion value stored in the same row).

        A numeric value also becomes the endpoint's fieldwatch_reading_value for this
        name and device, unless `gauge` is False (a kind with metrics of its own).
        """
        if gauge and value_num is not None:
            self.ep.board.observe_value(self.ep.endpoint_id, name, device, value_num)
        self.ep.storage.submit(
            writes.ReadingRecord(
                endpoint_id=self.ep.endpoint_id,
                generation=self.generation,
                name=name,
                value_num=value_num,
                value_text=value_text,
                quality=quality,
                source_time=source_time,
                received_at=time.time(),
                device=device,
                msg_key=msg_key,
                aux_name=aux_name,
                aux_num=aux_num,
                on_commit=on_commit,
            )
        )

    def open_alert(self, condition: str, severity: str, message: str, subject: str = "") -> None:
        """Open (idempotently) the alert for (condition, subject)."""
        self.ep.board.set_alert(self.ep.endpoint_id, condition, subject, True)
        self.ep.storage.submit(
            writes.AlertOpen(self.ep.endpoint_id, self.generation, condition, severity, message, time.time(), subject)
        )

    def resolve_alert(self, condition: str, subject: str = "") -> None:
        """Resolve the active alert for (condition, subject), if any."""
        self.ep.board.set_alert(self.ep.endpoint_id, condition, subject, False)
        self.ep.storage.submit(writes.AlertResolve(self.ep.endpoint_id, self.generation, condition, time.time(), subject))

    def count(self, family: str, label: str, amount: float = 1.0) -> None:
        """Add to a per-endpoint metric counter (e.g. ("messages", "stored")), read by the kind's families."""
        self.ep.board.incr(self.ep.endpoint_id, family, label, amount)

    # -- helpers: timers ---------------------------------------------------------

    def _current(self) -> bool:
        """Whether this instance is still the endpoint's newest generation."""
        return self.ep.board.current_generation(self.ep.endpoint_id) == self.generation

    def after(self, delay_s: float, message: Any) -> TimerHandle:
        """Tell ourselves `message` after `delay_s`; cancelled when we stop."""
        ref = self.actor_ref

        def _fire() -> None:
            if ref.is_alive() and self._current():
                ref.tell(message)

        handle = self.ep.scheduler.call_later(delay_s, _fire)
        self._track(handle)
        return handle

    def every(self, interval_s: float, message: Any, *, first_delay_s: float | None = None) -> TimerHandle:
        """Tell ourselves `message` every `interval_s` (drift-free); cancelled when we stop."""
        ref = self.actor_ref

        def _tick() -> None:
            if ref.is_alive() and self._current():
                ref.tell(message)
            else:  # stopped, or replaced while hung: this timer must not feed a dead mailbox
                handle.cancel()

        handle = self.ep.scheduler.every(interval_s, _tick, first_delay_s=first_delay_s)
        self._track(handle)
        return handle

    def _track(self, handle: TimerHandle) -> None:
        if len(self._timers) > 64:
            self._timers = [t for t in self._timers if not t.cancelled and t.due > time.monotonic() - 1]
        self._timers.append(handle)
