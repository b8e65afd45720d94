"""The MQTT endpoint actor: one broker connection, parse, store, acknowledge after commit.

`connect()` starts a new `MqttClient` (a connection attempt; paho never
reconnects on its own) and returns at once; its callbacks, on paho's thread,
only tell this actor `_Connected` / `_Lost`, or queue messages in the
connection's `_Inbox` (one `_Drain` tell per burst, not per message).  A refused or lost
connection goes through `retry_later` (backoff; `faulty` for credentials,
DNS, TLS).  Each message is counted for its topic, parsed, and its readings
are queued for storage with an `on_commit` that acknowledges the message to
the broker from the writer's thread: with QoS 1 and a persistent session,
nothing is acknowledged before it is stored, so a crash loses nothing.
Duplicates (SPEC §3) are told apart in `delivery.py`.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import pykka

from fieldwatch import states
from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.connection import ConnectionActor, EndpointContext, Failure
from fieldwatch.actors.mqtt.client import MqttClient, is_permanent_failure
from fieldwatch.actors.mqtt.delivery import AckGroup, DuplicateSummary, Message, Redeliveries, log_duplicates
from fieldwatch.actors.mqtt.devices import DeviceTimeout, DeviceTracker
from fieldwatch.actors.mqtt.parsers import ParseFailure, ParserSet
from fieldwatch.actors.mqtt.schema import MqttOptions
from fieldwatch.actors.topics import TopicSwitch
from fieldwatch.storage import writes

__all__ = ["MqttActor"]

_connections = itertools.count(1)
_TICK_S = 1.0  # topic counts flush, staleness check
_TOUCH_INTERVAL_S = 1.0  # last_data_at is written at most this often
_DRAIN_MAX = 2000  # messages handled per _Drain before other mailbox messages get a turn


@dataclass(frozen=True, slots=True)
class _Connected:
    """paho -> actor: the outcome of connection `conn` (code 0 = connected)."""

    conn: int
    code: int
    reason: str
    session_present: bool


@dataclass(frozen=True, slots=True)
class _Lost:
    """paho -> actor: connection `conn` ended."""

    conn: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Drain:
    """paho -> actor: messages wait in the inbox of connection `conn`."""

    conn: int


class _Inbox:
    """Messages from paho's thread for one connection, handed over in bursts.

    paho appends and tells `_Drain` only when none is pending; the actor clears
    the flag before draining, so a message appended later always gets a tell.
    """

    __slots__ = ("items", "scheduled")

    def __init__(self) -> None:
        self.items: deque[Message] = deque()
        self.scheduled = False


@dataclass(frozen=True, slots=True)
class _Tick:
    """Self-message every second: flush topic counts, check staleness."""


class MqttActor(ConnectionActor):
    """One MQTT endpoint: connection state machine, parsing, storage, topic and device tracking."""

    kind: ClassVar[str] = "mqtt"
    options: MqttOptions

    def __init__(self, child: ChildContext, endpoint: EndpointContext) -> None:
        super().__init__(child, endpoint)
        self.parsers = ParserSet(self.options.parsers)
        self.devices = DeviceTracker(self, self.options.offline_after_s)
        self._client: MqttClient | None = None
        self._inbox = _Inbox()
        self._conn = 0
        self._up = False  # the current connection is established
        self._processable: dict[str, bool] = {}
        self._inactive: set[str] = set()
        self._topic_counts: dict[str, int] = {}
        self._last_message_at: float | None = None
        self._last_touch = 0.0
        self._restored = False
        self._ticking = False
        self._redeliveries = Redeliveries()
        self._duplicates = DuplicateSummary()

    # -- ConnectionActor hooks ---------------------------------------------------

    def connect(self) -> None:
        """Start a connection attempt; its outcome arrives as _Connected."""
        self._close_client()
        if not self._restored:
            self._restore()
        if not self._ticking:
            self._ticking = True
            self.every(_TICK_S, _Tick())
        opts = self.options
        conn = self._conn = next(_connections)
        inbox = self._inbox = _Inbox()
        ref = self.actor_ref
        holder: list[MqttClient] = []

        def tell(message: object) -> None:  # paho's thread: never touch actor state
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

        def on_connect(code: int, reason: str) -> None:
            tell(_Connected(conn, code, reason, bool(holder and holder[0].session_present)))

        def on_message(topic: str, payload: bytes, qos: int, mid: int, dup: bool) -> None:
            inbox.items.append(Message(topic, payload, qos, mid, dup))
            if not inbox.scheduled:
                inbox.scheduled = True
                tell(_Drain(conn))

        client = MqttClient(
            host=opts.host,
            port=opts.port,
            client_id=opts.client_id,
            clean_session=self._clean_session(),
            username=opts.username,
            password=opts.password,
            tls=opts.tls,
            keepalive_s=opts.keepalive_s,
            on_connect=on_connect,
            on_disconnect=lambda code, reason: tell(_Lost(conn, code, reason)),
            on_message=on_message,
            on_subscribe_error=lambda topic, reason: self.log.warning("subscription to %r refused: %s",
                                                                      topic, reason),
        )
        holder.append(client)
        client.subscribe(list(opts.topics) or self.parsers.subscriptions, opts.qos)
        self._client = client
        client.start()

    def disconnect(self) -> None:
        """Close the connection, cancel device timers, write pending topic counts."""
        self._close_client()
        self.devices.flush()
        self.devices.cancel()
        self._flush_topics()

    def on_message(self, message: Any) -> Any:
        """Connection callbacks, messages, timers and topic switches."""
        if isinstance(message, _Drain):
            if message.conn == self._conn:
                self._drain()
        elif isinstance(message, _Connected):
            if message.conn == self._conn:
                self._on_connected(message)
        elif isinstance(message, _Lost):
            if message.conn == self._conn:
                self._on_lost(message)
        elif isinstance(message, _Tick):
            self._on_tick()
        elif isinstance(message, DeviceTimeout):
            self.devices.timeout(message, connected=self._up)
        elif isinstance(message, TopicSwitch):
            self._switch_topic(message)
        else:
            return super().on_message(message)
        return None

    # -- connection --------------------------------------------------------------

    def _clean_session(self) -> bool:
        opts = self.options
        if opts.clean_session is not None:
            return bool(opts.clean_session)
        return not (opts.client_id and opts.qos >= 1)  # a stable id with QoS >= 1: persistent session

    def _target(self) -> str:
        return f"{self.options.host}:{self.options.port}"

    def _on_connected(self, message: _Connected) -> None:
        if message.code == 0:
            self._up = True
            if not message.session_present:  # no session on the broker: nothing of ours will be redelivered
                self._redeliveries.clear()
            session = ", session present" if message.session_present else ""
            self.connected(f"connected to {self._target()} (code 0{session})")  # -> UP
            return
        self._close_client()
        state = states.FAULTY if is_permanent_failure(message.code) else states.DOWN
        # CONNECTING/DOWN/FAULTY -> DOWN or FAULTY (credentials, DNS, TLS: faulty), with the broker's code
        self.retry_later(Failure(state, f"{self._target()}: {message.reason} (code {message.code})"))

    def _on_lost(self, message: _Lost) -> None:
        self._up = False
        self._close_client()
        # UP/STALE -> DOWN at once; reconnect after the backoff
        self.retry_later(Failure(states.DOWN, f"{self._target()}: {message.reason} (code {message.code})"))

    def _close_client(self) -> None:
        self._up = False
        client, self._client = self._client, None
        if client is not None:
            client.stop(timeout_s=2.0)

    # -- messages ----------------------------------------------------------------

    def _drain(self) -> None:
        """Handle the messages waiting in the current connection's inbox (a bounded slice)."""
        inbox = self._inbox
        inbox.scheduled = False
        records: list[writes.Write] = []
        now = time.time()
        items = inbox.items
        acks = AckGroup(self._client, self, self._conn)
        for _ in range(min(len(items), _DRAIN_MAX)):
            self._handle(items.popleft(), now, records, acks)
        if records:
            self.ep.storage.submit_many(records)
        self._last_message_at = now
        if now - self._last_touch >= _TOUCH_INTERVAL_S or self.state == states.STALE:
            self._last_touch = now
            self.data_received(now)  # STALE -> UP
        if items and not inbox.scheduled:  # more left: let other mailbox messages in first
            inbox.scheduled = True
            self.actor_ref.tell(_Drain(self._conn))

    def _handle(self, message: Message, now: float, records: list[writes.Write], acks: AckGroup) -> None:
        topic = message.topic
        client = self._client
        if message.qos and self._redeliveries.arrived(message, self._conn):
            # the broker's redelivery of a message committed after its connection was gone: ack only
            self.count("mqtt_messages", "duplicate")
            self._duplicates.add(redelivered=1)
            log_duplicates(self.log, (message,), "broker redelivery of a message already committed")
            if client is not None:
                client.ack(message.mid, message.qos)
            return
        processable = self._processable.get(topic)
        if processable is None:  # first sight: recorded at once, so the API can switch it off
            processable = self._processable[topic] = self.parsers.processable(topic)
            records.append(writes.TopicSeen(endpoint_id=self.ep.endpoint_id, generation=self.generation, topic=topic,
                                            time=now, count=1, is_processable=processable))
        else:
            self._topic_counts[topic] = self._topic_counts.get(topic, 0) + 1
        if not processable or topic in self._inactive:
            self.count("mqtt_messages", "ignored")
            if client is not None:
                client.ack(message.mid, message.qos)
            return
        try:
            readings = self.parsers.parse(topic, message.payload)
        except ParseFailure as failure:
            self.count("mqtt_messages", "parse_error")
            self.log.debug("parse error on %s (%s): %s", topic, failure.parser, failure.error)
            records.append(writes.ParseErrorRecord(
                endpoint_id=self.ep.endpoint_id, generation=self.generation, time=now, topic=topic,
                parser=failure.parser, error=failure.error, sample=failure.sample))
            if client is not None:
                client.ack(message.mid, message.qos)  # a poison message must not block the session
            return
        if not readings:
            return
        for reading in readings:
            if reading.device:
                self.devices.seen(reading.device, now)
        on_commit = acks.add(message, len(readings))
        inc = self.inc
        for r in readings:
            if r.value_num is not None:
                inc.value(r.name, r.device, r.value_num)
            records.append(inc.reading_record(
                r.name, r.value_num, r.value_text, source_time=r.source_time, received_at=now, device=r.device,
                msg_key=None if r.by_content else r.identity, on_commit=on_commit))  # msg_key: parser identity only

    def _on_tick(self) -> None:
        self._flush_topics()
        summary = self._duplicates.due(time.time())
        if summary is not None:
            self.event("info", "duplicates", summary)
        stale = self.stale_after_s()
        if stale and self.state == states.UP and self._up:
            last = self._last_message_at or self.state_since
            if time.time() - last >= stale:
                # UP -> STALE: connected, but no message on any topic for stale_after_s
                self.transition(states.STALE, f"no message for {time.time() - last:.0f} s")

    def _flush_topics(self) -> None:
        if not self._topic_counts:
            return
        now = time.time()
        self.ep.storage.submit_many(
            writes.TopicSeen(endpoint_id=self.ep.endpoint_id, generation=self.generation, topic=topic, time=now,
                             count=count, is_processable=self._processable.get(topic, False))
            for topic, count in self._topic_counts.items()
        )
        self._topic_counts = {}

    def _switch_topic(self, message: TopicSwitch) -> None:
        if message.active:
            self._inactive.discard(message.topic)
        else:
            self._inactive.add(message.topic)
        self.log.info("topic %s: processing %s", message.topic, "on" if message.active else "off")

    def _restore(self) -> None:
        """Load stored topic switches and devices (the read side, this thread's connection)."""
        self._restored = True
        try:
            from fieldwatch.storage.models import Device, Topic

            eid = self.ep.endpoint_id
            self._inactive = {
                row.topic for row in Topic.select(Topic.topic).where(
                    (Topic.endpoint == eid) & (Topic.is_active == False))  # noqa: E712 - peewee expression
            }
            self.devices.restore(
                (row.name, row.last_seen, bool(row.online))
                for row in Device.select(Device.name, Device.last_seen, Device.online).where(Device.endpoint == eid)
            )
        except Exception as err:  # noqa: BLE001 - a read failure must not stop the endpoint; flags default on
            self.log.warning("could not load stored topic switches and devices: %s", err)
        finally:
            # One read at start: do not keep this thread's connection open for the actor's life
            # (an actor restarted by each reconnect or toggle would otherwise leave one per thread).
            from fieldwatch.storage.db import database_proxy, reset_connection

            if database_proxy.obj is not None:
                reset_connection(database_proxy.obj)

    # -- DeviceHost --------------------------------------------------------------

    def device_seen(self, device: str, at: float, online: bool) -> None:
        """Record a device's last message (online) or its going offline."""
        self.ep.storage.submit(writes.DeviceSeen(endpoint_id=self.ep.endpoint_id, generation=self.generation,
                                                 device=device, time=at, online=online))

    def device_offline(self, device: str, silent_s: float) -> None:
        """A device went silent: event and `offline` alert (subject = device)."""
        message = f"device {device} offline: no message for {silent_s:.0f} s"
        self.log.warning("%s", message)
        self.event("warning", "device-offline", message)
        self.open_alert("offline", "warning", message, subject=device)

    def device_online(self, device: str, offline_s: float) -> None:
        """An offline device sent again: event, alert resolved."""
        message = f"device {device} online again after {offline_s:.0f} s"
        self.log.info("%s", message)
        self.event("info", "device-online", message)
        self.resolve_alert("offline", subject=device)


    # -- LedgerHost (the writer's thread: no actor state but thread-safe objects) ---

    def settled(self, messages: list[Message], inserted: list[bool], acked: bool, conn: int) -> None:
        """The readings of `messages` are committed: count them, remember what could not be acked."""
        stored = sum(inserted)
        inc = self.inc
        if stored:
            inc.count("mqtt_messages", "stored", stored)
        if stored < len(messages):
            suppressed = [m for m, ok in zip(messages, inserted, strict=True) if not ok]
            inc.count("mqtt_messages", "duplicate", len(suppressed))
            self._duplicates.add(identity=len(suppressed))
            log_duplicates(self.log, suppressed, "every reading's parser identity is already stored")
        if not acked:  # the connection is gone: the broker will redeliver these with DUP
            self._redeliveries.committed_unacked(messages, conn)
