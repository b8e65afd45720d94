"""A thin wrapper over paho-mqtt 2.x for one connection attempt, reconnection left to the actor.

One `MqttClient` is one connection: `start()` connects in a thread of its own,
then runs paho's network loop (`loop_start`, so `ack`/`subscribe` from other
threads are safe).  Paho never reconnects by itself: the client is built with
`reconnect_on_failure=False` and the first connection is made with a plain
`connect()` in our thread, so paho's `retry_first_connection` path never runs.
The owner sees exactly one `on_connect` per `start()`: 0 for success (then
exactly one `on_disconnect` when the link ends), or a non-zero code for a
failed attempt (refused, unresolved, TLS, no CONNACK, wrong credentials).
After `stop()` returns, no callback fires.

Silent brokers: paho sends PINGREQ after `keepalive` seconds of silence but
only gives up one more keepalive later, i.e. up to 2 x keepalive after the
last packet.  A watchdog in our thread ends the connection with
`RC_KEEPALIVE_TIMEOUT` when nothing (a PUBLISH, PINGRESP, SUBACK...) was
received for max(1.5 x keepalive, keepalive + 1.5 s).  Inbound bytes are
noticed by `_BufferedSocket`.  A connection attempt gets the same limit, from
its start: the TCP/TLS handshake times out after at most that long (a host
that drops our SYN), and the CONNACK must come before it runs out.

Throughput: paho runs as `buffered.BufferedClient` (chunked reads, one wake-up per
burst). The outcome codes and how a failure is named are in `codes`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fieldwatch.actors.mqtt.buffered import BufferedClient
from fieldwatch.actors.mqtt.codes import (
    PROTOCOL_V5,
    PROTOCOL_V311,
    RC_CONNECT_FAILED,
    RC_KEEPALIVE_TIMEOUT,
    closed_before_connack,
    connack_code,
    connect_failure,
    disconnect_text,
)
from fieldwatch.actors.mqtt.tls import TlsLike

__all__ = ["DEFAULT_RECEIVE_MAXIMUM", "MqttClient"]

logger = logging.getLogger(__name__)

#: Receive Maximum sent by v5 clients (Mosquitto then ignores max_inflight_messages for us).
DEFAULT_RECEIVE_MAXIMUM = 1000

_TICK_S = 0.1  # watchdog period
_NEW, _CONNECTING, _CONNECTED, _ENDED = range(4)


class MqttClient:
    """One MQTT connection with manual acknowledgement; callbacks run on library threads.

    on_connect(code, reason) and on_disconnect(code, reason) get an MQTT
    reason code (v3.1.1 CONNACK codes 1-5 for a refused v3.1.1 connection),
    or one of the negative RC_* codes; on_message(topic, payload, qos, mid,
    dup) must be acknowledged with ack(mid, qos) once the message is stored.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str | None,
        clean_session: bool,
        username: str | None,
        password: str | None,
        tls: TlsLike | None,
        keepalive_s: int,
        on_connect: Callable[[int, str], None],
        on_disconnect: Callable[[int, str], None],
        on_message: Callable[[str, bytes, int, int, bool], None],
        protocol: int = PROTOCOL_V311,
        receive_maximum: int | None = DEFAULT_RECEIVE_MAXIMUM,
        connect_timeout_s: float = 10.0,
        on_subscribe_error: Callable[[str, str], None] | None = None,
        on_subscribed: Callable[[list[str]], None] | None = None,
    ) -> None:
        if protocol not in (PROTOCOL_V311, PROTOCOL_V5):
            raise ValueError(f"unsupported MQTT protocol {protocol}")
        self.host, self.port, self.keepalive_s = host, port, keepalive_s
        self.client_id = client_id or ""
        self.clean_session = clean_session
        self._username, self._password, self._tls = username, password, tls
        self._protocol = protocol
        self._receive_maximum = receive_maximum
        self._connect_timeout_s = connect_timeout_s
        self._cb_connect, self._cb_disconnect, self._cb_message = on_connect, on_disconnect, on_message
        self._cb_subscribe_error = on_subscribe_error
        self._cb_subscribed = on_subscribed
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._state = _NEW
        self._closed = False  # stop() called: no more callbacks
        self._topics: list[str] = []
        self._qos = 1
        self._pending_subs: dict[int, list[str]] = {}
        self._sub_lock = threading.Lock()
        self._last_inbound = time.monotonic()
        self._thread: threading.Thread | None = None
        self.session_present = False
        self._paho = self._make_paho()

    # --- public API -----------------------------------------------------------------------------

    @property
    def silence_limit_s(self) -> float:
        """Seconds without any packet from the broker before the link is declared dead (0: never)."""
        if self.keepalive_s <= 0:
            return 0.0
        return max(1.5 * self.keepalive_s, self.keepalive_s + 1.5)

    @property
    def connect_timeout_s(self) -> float:
        """Seconds a TCP/TLS handshake may take: no longer than the silence limit (bounded detection)."""
        limit = self.silence_limit_s
        return min(self._connect_timeout_s, limit) if limit else self._connect_timeout_s

    @property
    def connected(self) -> bool:
        """True between a successful on_connect and on_disconnect."""
        return self._state == _CONNECTED

    def start(self) -> None:
        """Connect and run the network loop in background threads (once per instance)."""
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError("an MqttClient connects once; make a new one to reconnect")
            self._state = _CONNECTING
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.host}:{self.port}", daemon=True)
        self._thread.start()

    def subscribe(self, topics: Sequence[str], qos: int) -> None:
        """Subscribe now if connected, and on connect otherwise (thread-safe)."""
        with self._lock:
            self._topics = list(dict.fromkeys(topics))
            self._qos = qos
            connected = self._state == _CONNECTED
        if connected:
            self._send_subscribe()

    def ack(self, mid: int, qos: int) -> bool:
        """Acknowledge a received message (thread-safe); False when this connection is gone."""
        if qos == 0:
            return True
        if self._state != _CONNECTED:
            return False
        return self._paho.ack(mid, qos) == paho.MQTT_ERR_SUCCESS

    def ack_many(self, acks: Sequence[tuple[int, int]]) -> bool:
        """ack() for several (mid, qos) pairs in one go; False when this connection is gone."""
        if self._state != _CONNECTED:
            return False
        ack = self._paho.ack
        return all([ack(mid, qos) == paho.MQTT_ERR_SUCCESS for mid, qos in acks if qos])

    def stop(self, timeout_s: float = 2.0) -> None:
        """Disconnect and join the threads; returns within about timeout_s even if they hang."""
        with self._lock:
            self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning(
                    "mqtt %s:%s: network thread still busy after %.1f s; abandoned", self.host, self.port, timeout_s
                )

    # --- our thread ---------------------------------------------------------------------------

    def _make_paho(self) -> BufferedClient:
        v5 = self._protocol == PROTOCOL_V5
        client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if v5 else self.clean_session,
            protocol=MQTTProtocolVersion(self._protocol),
            manual_ack=True,
            reconnect_on_failure=False,
        )
        client.connect_timeout = self.connect_timeout_s
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _run(self) -> None:
        try:
            if self._connect():
                self._paho.loop_start()
                self._watch()
        finally:
            self._teardown()

    def _connect(self) -> bool:
        """Blocking TCP/TLS connect and CONNECT packet; reports a failure and returns False."""
        target = f"{self.host}:{self.port}"
        began = time.monotonic()
        try:
            if self._tls is not None:
                self._paho.tls_set(ca_certs=self._tls.ca, certfile=self._tls.cert, keyfile=self._tls.key)
                self._paho.tls_insecure_set(bool(self._tls.insecure))
            properties: Properties | None = None
            if self._protocol == PROTOCOL_V5:
                properties = Properties(PacketTypes.CONNECT)
                if not self.clean_session:
                    properties.SessionExpiryInterval = 0xFFFFFFFF  # the session outlives the connection
                if self._receive_maximum:
                    properties.ReceiveMaximum = self._receive_maximum
                self._paho.connect(
                    self.host,
                    self.port,
                    keepalive=self.keepalive_s,
                    clean_start=self.clean_session,
                    properties=properties,
                )
            else:
                self._paho.connect(self.host, self.port, keepalive=self.keepalive_s)
        except (OSError, ValueError) as err:  # socket.gaierror, ssl.SSLError, FileNotFoundError are OSErrors
            self._end_connect(*connect_failure(err, self.host, target))
            return False
        self._last_inbound = began  # the CONNACK deadline counts from the attempt's start, handshake included
        return True

    def _watch(self) -> None:
        """Wait for the end of the connection; declare a silent broker dead."""
        limit = self.silence_limit_s
        connack_limit = limit or self._connect_timeout_s
        while not self._closed:
            self._wake.wait(_TICK_S)
            state = self._state
            if state == _ENDED:
                return
            silence = time.monotonic() - max(self._last_inbound, self._paho.last_received)
            if state == _CONNECTING and silence > connack_limit:
                self._end_connect(
                    RC_CONNECT_FAILED, f"no CONNACK from {self.host}:{self.port} within {connack_limit:.1f} s"
                )
                return
            if state == _CONNECTED and limit and silence > limit:
                self._end_disconnect(
                    RC_KEEPALIVE_TIMEOUT, f"keepalive timeout: nothing from the broker for {silence:.1f} s"
                )
                return

    def _teardown(self) -> None:
        with self._lock:
            self._state = _ENDED
        try:
            self._paho.disconnect()
        except Exception:  # noqa: BLE001 - best effort on a dead socket; nothing else may escape
            logger.debug("mqtt %s:%s: disconnect failed", self.host, self.port, exc_info=True)
        self._paho.loop_stop()
        # paho closes its wake-up socket pair only when the client is garbage-collected,
        # and it sits in a reference cycle: close the pair now so reconnects hold no fds.
        for name in ("_sockpairR", "_sockpairW"):
            sock = getattr(self._paho, name, None)
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
                setattr(self._paho, name, None)

    # --- outcome reporting (exactly once) --------------------------------------------------------

    def _end_connect(self, code: int, reason: str) -> None:
        with self._lock:
            if self._state != _CONNECTING:
                return
            self._state = _ENDED
            closed = self._closed
        self._wake.set()
        if not closed:
            self._cb_connect(code, reason)

    def _end_disconnect(self, code: int, reason: str) -> None:
        with self._lock:
            if self._state != _CONNECTED:
                return
            self._state = _ENDED
            closed = self._closed
        self._wake.set()
        if not closed:
            self._cb_disconnect(code, reason)

    # --- paho callbacks (paho's thread) ---------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            self._end_connect(connack_code(reason, self._protocol), reason.getName())
            return
        with self._lock:
            if self._state != _CONNECTING:
                return
            self._state = _CONNECTED
            self.session_present = bool(getattr(flags, "session_present", False))
            closed = self._closed
        self._send_subscribe()
        if not closed:
            self._cb_connect(0, "session present" if self.session_present else reason.getName())

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Properties | None
    ) -> None:
        text = disconnect_text(reason, flags)
        if self._state == _CONNECTING:
            if reason.value == RC_KEEPALIVE_TIMEOUT:
                text = f"no CONNACK within {self.keepalive_s} s"
            probe_s = min(self._connect_timeout_s, 2.0)
            self._end_connect(
                *closed_before_connack(
                    f"connection closed before CONNACK: {text}",
                    self.host,
                    self.port,
                    self._tls,
                    self._paho.buffered_socket,
                    probe_s,
                )
            )
        else:
            self._end_disconnect(reason.value, text)
        self._wake.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._state == _CONNECTED and not self._closed:
            self._cb_message(message.topic, bytes(message.payload), message.qos, message.mid, bool(message.dup))

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._sub_lock:
            topics = self._pending_subs.pop(mid, [])
        granted: list[str] = []
        for topic, code in zip(topics, reason_codes, strict=False):
            if code.is_failure:
                logger.warning(
                    "mqtt %s:%s: subscription to %r refused: %s", self.host, self.port, topic, code.getName()
                )
                if self._cb_subscribe_error is not None and not self._closed:
                    self._cb_subscribe_error(topic, code.getName())
            else:
                granted.append(topic)
        if granted and self._cb_subscribed is not None and not self._closed:
            self._cb_subscribed(granted)

    def _send_subscribe(self) -> None:
        with self._lock:
            topics, qos = list(self._topics), self._qos
        if not topics:
            return
        with self._sub_lock:  # held so the SUBACK handler cannot look the mid up before it is stored
            result, mid = self._paho.subscribe([(topic, qos) for topic in topics])
            if result == paho.MQTT_ERR_SUCCESS and mid is not None:
                self._pending_subs[mid] = topics
