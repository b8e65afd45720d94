"""The base of every connection actor: protocol state around the endpoint's `Incarnation`.

Status belongs to the ledger (`fieldwatch.ledger`): the actor holds the `Incarnation`
its supervisor's start began (`self.inc`) and writes every transition, datum, alert
and counter through it; the incarnation refuses writes once a newer generation runs and
applies the one logging rule. Protocol actors implement `connect()`, `disconnect()` and
`on_message()` and call the helpers below (thin delegations to `self.inc`); a failed
attempt or a lost connection is one `Failure` given to `retry_later`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fieldwatch import states
from fieldwatch.actors.base import ChildContext, SupervisedActor
from fieldwatch.actors.messages import HEALTHY, Health
from fieldwatch.actors.scheduler import Scheduler, TimerHandle
from fieldwatch.ledger import EndpointLedger, Failure
from fieldwatch.logpath import PathLogger
from fieldwatch.policy import ChildPolicy

if TYPE_CHECKING:
    from fieldwatch.config.model import EndpointConfig
    from fieldwatch.storage.gateway import StorageGateway

__all__ = ["ConnectionActor", "EndpointContext", "Failure", "Reconnect", "PathLogger"]

logger = logging.getLogger(__name__)


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class EndpointContext:
    """The collaborators and identity of one endpoint actor (same for every generation).

    `holds`: whether this instance holds the site's lease now (cluster, SPEC section 10;
    always True for a single instance). Checked before every (re)connection attempt.
    """

    endpoint_id: int
    site: str
    config: EndpointConfig
    policy: ChildPolicy
    ledger: EndpointLedger
    storage: StorageGateway
    scheduler: Scheduler
    holds: Callable[[], bool] = _always


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
        self.inc = endpoint.ledger.incarnation(endpoint.endpoint_id, child.generation)
        self.inc.log = self.log
        self.inc.fresh_within_s = self.stale_after_s()

    # -- the incarnation's status, as the protocol reads it --------------------------

    @property
    def state(self) -> str:
        """The endpoint's state."""
        return self.inc.state

    @property
    def state_since(self) -> float:
        """When the state was entered."""
        return self.inc.since

    @property
    def reason(self) -> str | None:
        """The state's reason."""
        return self.inc.reason

    @property
    def last_data_at(self) -> float | None:
        """When data last arrived."""
        return self.inc.last_data_at

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
            if message.generation == self.generation and self._lease_held():
                self.connect()
            return None
        return self.on_message(message)

    def _lease_held(self) -> bool:
        """Cluster: connect only while this instance holds the site's lease. A zombie (an
        instance resumed after losing it) must not knock the new owner off the peer (the same
        client identity or session): it stays idle until the runner stops it."""
        if self.ep.holds():
            return True
        self.log.info("not connecting: this instance no longer holds the lease of site %s", self.ep.site)
        self.reconnects_refused += 1
        return False

    #: (re)connection attempts refused because the site's lease was not held (tests read it)
    reconnects_refused = 0

    def check_health(self) -> Health:
        stale = self.stale_after_s()
        if self.state == states.STALE and stale and time.time() - self.state_since >= stale:
            return Health(False, f"stale for {time.time() - self.state_since:.0f}s")
        return HEALTHY

    # -- helpers: status (delegations to the incarnation) ------------------------------

    def transition(self, state: str, reason: str | None = None, *, exc_type: str | None = None) -> None:
        """Move to `state` (see `Incarnation.transition`)."""
        self.inc.transition(state, reason, exc_type)

    def connected(self, reason: str | None = None) -> None:
        """The link is established (and verified): count reconnects, reset backoff, go `up`."""
        self.inc.connected(reason)

    def retry_later(self, failure: Failure) -> float:
        """Enter `failure.state` (down or faulty) and reconnect after the backoff (faulty: the maximum)."""
        delay = self.inc.failed(failure, self.ep.policy.backoff)
        self.after(delay, Reconnect(self.generation))
        return delay

    def data_received(self, at: float | None = None) -> None:
        """Fresh data arrived: remember when, and leave `stale` for `up`."""
        self.inc.data(at)

    def event(
        self, level: str, event: str, message: str, *, exc_type: str | None = None, attempt: int | None = None
    ) -> None:
        """Append to the connection event log (through the persistence actor)."""
        self.inc.event(level, event, message, exc_type=exc_type, attempt=attempt)

    def open_alert(self, condition: str, severity: str, message: str, subject: str = "") -> None:
        """Open (idempotently) the alert for (condition, subject)."""
        self.inc.alert(condition, severity, message, subject)

    def resolve_alert(self, condition: str, subject: str = "") -> None:
        """Resolve the active alert for (condition, subject), if any."""
        self.inc.resolve(condition, subject)

    def count(self, family: str, label: str, amount: float = 1.0) -> None:
        """Add to a per-endpoint metric counter (e.g. ("messages", "stored")), read by the kind's families."""
        self.inc.count(family, label, amount)

    # -- helpers: timers ---------------------------------------------------------

    def after(self, delay_s: float, message: Any) -> TimerHandle:
        """Tell ourselves `message` after `delay_s`; cancelled when we stop."""
        ref = self.actor_ref

        def _fire() -> None:
            if ref.is_alive() and self.inc.current():
                ref.tell(message)

        handle = self.ep.scheduler.call_later(delay_s, _fire)
        self._track(handle)
        return handle

    def every(self, interval_s: float, message: Any, *, first_delay_s: float | None = None) -> TimerHandle:
        """Tell ourselves `message` every `interval_s` (drift-free); cancelled when we stop."""
        ref = self.actor_ref

        def _tick() -> None:
            if ref.is_alive() and self.inc.current():
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
