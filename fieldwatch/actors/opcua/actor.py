"""The OPC UA endpoint actor: connect, verify, poll/subscribe, health-check, stale and thresholds.

One actor per `kind: opcua` endpoint. Its session runs on the shared
`OpcuaLoop` and the actor never blocks on the network: it submits each
request (`*_nowait`), and the request's done-callback tells the actor a
`_Done` message, so health checks are answered at once even while a frozen
server makes a request wait for its `timeout_s`.
A connection is `up` only once verified: the server answered one Read with
ServerStatus.State = Running plus the configured nodes. Library callbacks
(subscription data, connection loss) only `tell` this actor typed messages
carrying the connection number, so late messages from an older connection
are ignored.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

import pykka

from fieldwatch import states
from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.connection import ConnectionActor, EndpointContext
from fieldwatch.actors.opcua.classify import Failure
from fieldwatch.actors.opcua.schema import NodeConfig, OpcuaOptions, ThresholdConfig
from fieldwatch.actors.opcua.session import NodeValue, OpcuaSession, ServerHealth, SessionError
from fieldwatch.actors.opcua.thresholds import ThresholdTracker, numeric
from fieldwatch.actors.scheduler import TimerHandle

__all__ = ["ConnectionLost", "FreshnessRead", "HealthTick", "NodeData", "OpcuaActor", "PollTick"]

#: The freshness full read of subscribed nodes runs every stale_after_s / this.
_FRESHNESS_DIVISOR = 2.0


@dataclass(frozen=True, slots=True)
class PollTick:
    """Timer: read the polled nodes whose poll_s is `poll_s`."""

    conn: int
    poll_s: float


@dataclass(frozen=True, slots=True)
class HealthTick:
    """Timer: read ServerStatus (the protocol-level liveness probe) and check freshness."""

    conn: int


@dataclass(frozen=True, slots=True)
class FreshnessRead:
    """Timer: one full read of the subscribed nodes (a subscription can go quiet silently)."""

    conn: int


@dataclass(frozen=True, slots=True)
class NodeData:
    """Loop thread -> actor: a data change notification of a subscribed node."""

    conn: int
    value: NodeValue


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """Loop thread -> actor: asyncua's watchdog saw the connection die."""

    conn: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Done:
    """Loop thread -> actor: the request `op` of connection `conn` finished (result or SessionError)."""

    conn: int
    op: str
    future: Future[Any]
    nodes: tuple[NodeConfig, ...] = ()


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass  # the actor stopped or was replaced: nobody needs this any more


def _split_value(value: Any) -> tuple[float | None, str | None]:
    """(value_num, value_text) for storage: numbers (and bools as 0/1) as numbers, the rest as text."""
    number = numeric(value)
    if number is not None:
        return number, None
    if value is None:
        return None, None
    if isinstance(value, str):
        return None, value
    return None, json.dumps(value, default=str)


class OpcuaActor(ConnectionActor):
    """Connection actor of one OPC UA server (PLC, SCADA)."""

    kind: ClassVar[str] = "opcua"
    options: OpcuaOptions

    def __init__(self, child: ChildContext, endpoint: EndpointContext) -> None:
        super().__init__(child, endpoint)
        opts: OpcuaOptions = self.options
        self._timeout_s = float(opts.timeout_s)
        self._polled: dict[float, list[NodeConfig]] = defaultdict(list)
        self._subscribed: list[NodeConfig] = []
        for node in opts.nodes:
            if node.mode == "subscribe":
                self._subscribed.append(node)
            else:
                self._polled[float(node.poll_s)].append(node)
        self._session: OpcuaSession | None = None
        self._conn = 0
        self._conn_timers: list[TimerHandle] = []
        self._bad: dict[str, str] = {}  # reading name -> the bad quality already reported
        # subscribed reading name -> (value, source time) last stored: a keep-alive read stores nothing new
        self._stored: dict[str, tuple[Any, float | None]] = {}
        self._subscribed_names = {node.name for node in self._subscribed}
        self._path_warned = False
        self._inflight: dict[str, float] = {}  # request op -> when it was sent (monotonic)
        self._verify_fresh = False
        self._trackers = self._make_trackers(opts.thresholds)

    # -- ConnectionActor hooks ------------------------------------------------------

    def connect(self) -> None:
        """Start a new session's connect; `_Done("connect")` continues."""
        self._drop_session()
        self._conn += 1
        conn, ref = self._conn, self.actor_ref
        opts: OpcuaOptions = self.options
        self._session = OpcuaSession(
            opts.url,
            timeout_s=self._timeout_s,
            security=opts.security,
            username=opts.username,
            password=opts.password,
            on_connection_lost=lambda reason: _tell(ref, ConnectionLost(conn, reason)),
        )
        self._await("connect", self._session.connect_nowait())

    def disconnect(self) -> None:
        """Close the session in the background and stop this connection's timers."""
        self._drop_session()

    def on_message(self, message: Any) -> Any:
        """Request results, timer ticks and messages told by the OPC UA loop thread."""
        if getattr(message, "conn", None) != self._conn or self._session is None:
            return None  # from an older connection
        if isinstance(message, _Done):
            self._inflight.pop(message.op, None)
            self._done(message)
        elif isinstance(message, NodeData):
            self._node_data(message.value)
        elif isinstance(message, PollTick):
            self._read(f"poll:{message.poll_s:g}", self._polled.get(message.poll_s, []))
        elif isinstance(message, FreshnessRead):
            self._read("fresh", self._subscribed)
        elif isinstance(message, HealthTick):
            self._health_tick()
        elif isinstance(message, ConnectionLost):
            self._fail(Failure(states.DOWN, message.reason))
        else:
            return super().on_message(message)
        return None

    # -- requests -------------------------------------------------------------------------

    def _await(self, op: str, future: Future[Any], nodes: tuple[NodeConfig, ...] = ()) -> None:
        """Have the loop tell us `_Done(op)` when `future` resolves (it does within timeout_s)."""
        conn, ref = self._conn, self.actor_ref
        self._inflight[op] = time.monotonic()
        future.add_done_callback(lambda done: _tell(ref, _Done(conn, op, done, nodes)))

    def _done(self, message: _Done) -> None:
        try:
            result = message.future.result()
        except SessionError as err:
            self._count_error(len(message.nodes))
            self._fail(err.failure)
            return
        except Exception as err:  # supervision boundary for a bug below the session: a DOWN, not a crash
            self.log.exception("OPC UA request %s failed unexpectedly", message.op)
            self._count_error(len(message.nodes))
            self._fail(Failure(states.DOWN, f"{type(err).__name__}: {err}"))
            return
        if message.op == "connect":
            self._connected_session(result)
        elif message.op == "verify":
            self._verified(message.nodes, *result)
        elif message.op == "subscribe":
            self._up(self._verify_fresh)
        elif message.op == "health":
            self._health_result(result)
        else:  # "poll:<s>" and "fresh"
            self._handle_values(list(message.nodes), result)
            self._check_stale()

    def _read(self, op: str, nodes: list[NodeConfig]) -> None:
        if not nodes or self._session is None or op in self._inflight:
            return  # a read of this group is still under way: do not pile up requests
        self._await(op, self._session.read_nowait([node.id for node in nodes]), tuple(nodes))

    def _health_tick(self) -> None:
        assert self._session is not None
        overdue = [op for op, since in self._inflight.items() if time.monotonic() - since > self._timeout_s + 2]
        if overdue:  # the session bounds every request; this guards against a stalled loop
            self._fail(Failure(states.DOWN, f"{overdue[0]}: no answer within {self._timeout_s:g} s"))
            return
        if "health" not in self._inflight:
            self._await("health", self._session.health_nowait())
        self._check_stale()

    # -- connection steps ---------------------------------------------------------------

    def _connected_session(self, offered: list[str]) -> None:
        session = self._session
        assert session is not None
        if not session.path_offered() and not self._path_warned:
            self._path_warned = True
            message = (
                f"the server accepted {session.url} but does not offer that endpoint path; "
                f"it offers: {', '.join(offered) or 'nothing'}"
            )
            self.log.warning("%s", message)
            self.event("warning", "endpoint_path_not_offered", message)
        nodes = tuple(node for group in self._polled.values() for node in group) + tuple(self._subscribed)
        self._await("verify", session.probe_nowait([node.id for node in nodes]), nodes)

    def _verified(self, nodes: tuple[NodeConfig, ...], health: ServerHealth, values: list[NodeValue]) -> None:
        if not health.running:
            self._fail(Failure(states.DOWN, f"server state is {health.state_name}, not Running"))
            return
        self._verify_fresh = self._handle_values(list(nodes), values) or not nodes
        if not self._subscribed:
            self._up(self._verify_fresh)
            return
        assert self._session is not None
        conn, ref = self._conn, self.actor_ref
        interval = min(node.poll_s for node in self._subscribed)
        future = self._session.subscribe_nowait(
            [node.id for node in self._subscribed], interval, lambda v: _tell(ref, NodeData(conn, v))
        )
        self._await("subscribe", future)

    def _up(self, fresh: bool) -> None:
        self._start_timers()
        stale_after = self.stale_after_s()
        last = self.last_data_at
        if not fresh and stale_after and last is not None and time.time() - last > stale_after:
            # CONNECTING -> STALE: the link works but the data is still old (e.g. after a replacement).
            self.transition(states.STALE, self._stale_reason(stale_after))
            return
        # CONNECTING/DOWN/FAULTY -> UP: the server answered a Read as Running
        self.connected("connected; server Running")

    def _health_result(self, health: ServerHealth) -> None:
        if not health.running:
            self._fail(Failure(states.DOWN, f"server state is {health.state_name}, not Running"))
            return
        self._check_stale()

    def _start_timers(self) -> None:
        conn = self._conn
        for poll_s in self._polled:
            self._conn_timers.append(self.every(poll_s, PollTick(conn, poll_s)))
        self._conn_timers.append(self.every(self.ep.policy.health_check.interval_s, HealthTick(conn)))
        stale_after = self.stale_after_s()
        if self._subscribed:
            period = max(1.0, (stale_after or 30.0) / _FRESHNESS_DIVISOR)
            self._conn_timers.append(self.every(period, FreshnessRead(conn)))

    def _fail(self, failure: Failure) -> None:
        """Drop the connection and retry after the backoff: UP/STALE/CONNECTING -> DOWN or FAULTY."""
        self._drop_session()
        self.retry_later(failure)

    def _drop_session(self) -> None:
        for timer in self._conn_timers:
            timer.cancel()
        self._conn_timers.clear()
        self._inflight.clear()
        session, self._session = self._session, None
        if session is not None:
            session.close_nowait()  # bounded on the loop; nothing to wait for here

    # -- data -------------------------------------------------------------------------------

    def _node_data(self, value: NodeValue) -> None:
        nodes = [node for node in self._subscribed if node.id == value.node_id]
        if nodes:
            self._handle_values(nodes, [value] * len(nodes))

    def _handle_values(self, nodes: list[NodeConfig], values: list[NodeValue]) -> bool:
        """Store, count and threshold-check the values; True if any was good (fresh data)."""
        fresh = False
        for node, value in zip(nodes, values, strict=True):
            if value.good:
                fresh = True
                self.count("opcua_reads", "ok")
                if not self._changed(node.name, value):
                    continue  # the freshness read (or a re-sent notification) of a value already stored
                number, text = _split_value(value.value)
                self.store_reading(node.name, number, text, quality=value.quality, source_time=value.source_time)
                if self._bad.pop(node.name, None) is not None:
                    self.event("info", "node_good", f"{node.name} ({node.id}) reads Good again")
                self._thresholds(node.name, value.value)
                continue
            self.count("opcua_reads", "bad_status")
            self._stored.pop(node.name, None)  # a Good value after this is a change
            if self._bad.get(node.name) != value.quality:  # report each bad status once, not per read
                self._bad[node.name] = value.quality
                number, text = _split_value(value.value)
                self.store_reading(node.name, number, text, quality=value.quality, source_time=value.source_time)
                self.log.warning("node %s (%s): %s", node.name, node.id, value.quality)
                self.event("warning", "node_bad_status", f"{node.name} ({node.id}): {value.quality}")
        if fresh:
            self.data_received()
        return fresh

    def _changed(self, name: str, value: NodeValue) -> bool:
        """Whether a subscribed reading's value or source time differs from what was stored last.

        Polled readings are always stored (every poll is a sample); a subscribed
        one only when the server reports a change, so the keep-alive read every
        stale_after_s / 2 proves freshness without storing the same row again.
        """
        if name not in self._subscribed_names:
            return True
        key = (value.value, value.source_time)
        if self._stored.get(name) == key:
            return False
        self._stored[name] = key
        return True

    def _count_error(self, nodes: int) -> None:
        if nodes:
            self.count("opcua_reads", "error", float(nodes))

    def _check_stale(self) -> None:
        stale_after = self.stale_after_s()
        if self.state != states.UP or not stale_after:
            return
        last = self.last_data_at
        if last is None or time.time() - last > stale_after:
            # UP -> STALE: connected, but no good node data within stale_after_s
            self.transition(states.STALE, self._stale_reason(stale_after))

    def _stale_reason(self, stale_after: float) -> str:
        last = self.last_data_at
        age = "never" if last is None else f"{time.time() - last:.1f}s ago"
        return f"connected, but no good node data within {stale_after:g}s (last {age})"

    # -- thresholds ---------------------------------------------------------------------

    def _make_trackers(
        self, thresholds: tuple[ThresholdConfig, ...]
    ) -> dict[str, list[tuple[str, ThresholdTracker, ThresholdConfig]]]:
        active = self.inc.alerts
        per_reading: dict[str, int] = defaultdict(int)
        for cfg in thresholds:
            per_reading[cfg.reading] += 1
        trackers: dict[str, list[tuple[str, ThresholdTracker, ThresholdConfig]]] = defaultdict(list)
        for index, cfg in enumerate(thresholds):
            subject = cfg.reading if per_reading[cfg.reading] == 1 else f"{cfg.reading}#{index}"
            tracker = ThresholdTracker(
                cfg.reading, high=cfg.high, low=cfg.low, hysteresis=cfg.hysteresis,
                active=("threshold", subject) in active,
            )
            trackers[cfg.reading].append((subject, tracker, cfg))
        return trackers

    def _thresholds(self, reading: str, value: Any) -> None:
        for subject, tracker, cfg in self._trackers.get(reading, ()):
            was_active = tracker.active
            change = tracker.update(value)
            if change is None:
                continue
            if change.action == "resolve":
                self.log.info("threshold resolved: %s", change.message)
                self.resolve_alert("threshold", subject)
                self.event("info", "threshold_resolved", change.message)
                continue
            if was_active:  # crossed from one limit to the other: a new alert with the new message
                self.resolve_alert("threshold", subject)
            self.log.warning("threshold: %s", change.message)
            self.open_alert("threshold", cfg.severity, change.message, subject)
            self.event("warning", "threshold", change.message)
