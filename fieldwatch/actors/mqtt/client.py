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

Throughput: paho reads a packet with three or more `recv` calls and wakes its
loop with one `send` per queued packet; each is a system call that lets go of
the GIL, and in a daemon whose other threads are busy (parsing, the SQLite
writer) every such release can cost a wait for the GIL to come back.
`_BufferedClient` reads the socket in 64 KiB chunks, handles every packet
already buffered before it selects again, and wakes its loop once per burst of
acks instead of once per ack.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fieldwatch.actors.mqtt.tls import (
    TLS_CLIENT_CERT_HINT,
    TlsLike,
    alert_text,
    certificate_alert,
    probe_tls_session,
    speaks_tls,
)

__all__ = [
    "AUTH_FAILURES",
    "DEFAULT_RECEIVE_MAXIMUM",
    "PROTOCOL_V311",
    "PROTOCOL_V5",
    "RC_CONNECT_FAILED",
    "RC_KEEPALIVE_TIMEOUT",
    "RC_TLS_EXPECTED",
    "RC_TLS_FAILED",
    "RC_UNRESOLVED",
    "MqttClient",
    "TlsLike",
    "is_auth_failure",
    "is_permanent_failure",
]

logger = logging.getLogger(__name__)

PROTOCOL_V311 = int(MQTTProtocolVersion.MQTTv311)
PROTOCOL_V5 = int(MQTTProtocolVersion.MQTTv5)
#: Receive Maximum sent by v5 clients (Mosquitto then ignores max_inflight_messages for us).
DEFAULT_RECEIVE_MAXIMUM = 1000

# Client-side outcomes (negative: never sent by a broker).
RC_CONNECT_FAILED = -1  # TCP connect refused / timed out, or no CONNACK in time
RC_UNRESOLVED = -2  # the host name does not resolve
RC_TLS_FAILED = -3  # TLS files unreadable, handshake or certificate verification failed, client cert refused
RC_TLS_EXPECTED = -4  # plain TCP to a port that answers a TLS handshake
#: MQTT v5 "Keep alive timeout"; also what the watchdog reports for a silent broker.
RC_KEEPALIVE_TIMEOUT = 141

#: CONNACK codes for rejected credentials: v3.1.1 (4, 5) and v5 (134, 135).
AUTH_FAILURES: frozenset[int] = frozenset({4, 5, 134, 135})
_PERMANENT: frozenset[int] = AUTH_FAILURES | {1, 2, 132, 133, 138, RC_UNRESOLVED, RC_TLS_FAILED, RC_TLS_EXPECTED}
_V311_CONNACK = {
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}
_TICK_S = 0.1  # watchdog period
_READ_CHUNK = 65536
_NEW, _CONNECTING, _CONNECTED, _ENDED = range(4)


def is_auth_failure(code: int) -> bool:
    """True when a CONNACK code means the credentials were rejected."""
    return code in AUTH_FAILURES


def is_permanent_failure(code: int) -> bool:
    """True for failures retrying will not fix (credentials, client id, protocol, DNS, TLS): `faulty`."""
    return code in _PERMANENT


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
                logger.warning("mqtt %s:%s: network thread still busy after %.1f s; abandoned",
                               self.host, self.port, timeout_s)

    # --- our thread ---------------------------------------------------------------------------

    def _make_paho(self) -> _BufferedClient:
        v5 = self._protocol == PROTOCOL_V5
        client = _BufferedClient(
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
                self._paho.connect(self.host, self.port, keepalive=self.keepalive_s,
                                   clean_start=self.clean_session, properties=properties)
            else:
                self._paho.connect(self.host, self.port, keepalive=self.keepalive_s)
        except socket.gaierror as err:
            self._end_connect(RC_UNRESOLVED, f"host {self.host!r} does not resolve: {err}")
            return False
        except (ssl.SSLError, ssl.CertificateError) as err:
            hint = f"{TLS_CLIENT_CERT_HINT} " if certificate_alert(err) else ""
            self._end_connect(RC_TLS_FAILED, f"{hint}TLS with {target} failed: {err}")
            return False
        except FileNotFoundError as err:
            self._end_connect(RC_TLS_FAILED, f"TLS file missing: {err}")
            return False
        except (OSError, ValueError) as err:
            self._end_connect(RC_CONNECT_FAILED, f"connect to {target} failed: {err}")
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
                self._end_connect(RC_CONNECT_FAILED, f"no CONNACK from {self.host}:{self.port} "
                                                     f"within {connack_limit:.1f} s")
                return
            if state == _CONNECTED and limit and silence > limit:
                self._end_disconnect(RC_KEEPALIVE_TIMEOUT,
                                     f"keepalive timeout: nothing from the broker for {silence:.1f} s")
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

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            code = reason.value
            if self._protocol == PROTOCOL_V311:
                code = _V311_CONNACK.get(reason.getName(), code)
            self._end_connect(code, reason.getName())
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

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any,
                       reason: ReasonCode, properties: Properties | None) -> None:
        text = reason.getName()
        from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
        if not from_broker and reason.value == 128:
            text = "connection lost (socket closed)"
        elif from_broker:
            text = f"broker sent DISCONNECT: {text}"
        if self._state == _CONNECTING:
            if reason.value == RC_KEEPALIVE_TIMEOUT:
                text = f"no CONNACK within {self.keepalive_s} s"
            self._end_connect(*self._closed_before_connack(f"connection closed before CONNACK: {text}"))
        else:
            self._end_disconnect(reason.value, text)
        self._wake.set()

    def _closed_before_connack(self, text: str) -> tuple[int, str]:
        """Classify a link the broker ended before its CONNACK by what it said (STYLE rule 12).

        With TLS: a broker that ends the session right after the handshake, when we
        offered no client certificate or it sent a TLS alert, is refusing our
        certificate (with TLS 1.3 the client side of the handshake completes before the
        server checks it). Without TLS: a port that answers a TLS handshake wants TLS.
        """
        sock = self._paho.buffered_socket
        probe_s = min(self._connect_timeout_s, 2.0)
        if self._tls is not None:
            alert = alert_text(sock.error if sock is not None else None)
            if not alert:  # paho's CONNECT made the broker reset the link, alert and all: ask again
                probed = probe_tls_session(self.host, self.port, self._tls, probe_s)
                if probed is None:  # it waits for a CONNECT (or is gone): not a refusal of our TLS identity
                    return RC_CONNECT_FAILED, f"{text} (after the TLS handshake)"
                alert = probed
            return RC_TLS_FAILED, f"{TLS_CLIENT_CERT_HINT}{f' TLS alert: {alert}' if alert else ''} ({text})"
        if (sock is None or not sock.received) and speaks_tls(self.host, self.port, probe_s):
            return RC_TLS_EXPECTED, (f"the port answers a TLS handshake: the broker expects TLS, configure tls: "
                                     f"for this endpoint ({text})")
        return RC_CONNECT_FAILED, text

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._state == _CONNECTED and not self._closed:
            self._cb_message(message.topic, bytes(message.payload), message.qos, message.mid, bool(message.dup))

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        with self._sub_lock:
            topics = self._pending_subs.pop(mid, [])
        granted: list[str] = []
        for topic, code in zip(topics, reason_codes, strict=False):
            if code.is_failure:
                logger.warning("mqtt %s:%s: subscription to %r refused: %s",
                               self.host, self.port, topic, code.getName())
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


class _BufferedSocket:
    """A paho socket (TCP or TLS) read in large chunks; `recv(n)` serves from the buffer.

    paho checks `pending()` before it selects (meant for TLS): buffered bytes
    make it read again at once.  `last_received` is the monotonic time of the
    last bytes from the peer (the keepalive watchdog's input).
    """

    __slots__ = ("_sock", "_buf", "last_received", "received", "error")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = bytearray()
        self.last_received = 0.0
        self.received = 0  # bytes from the peer so far
        self.error: OSError | None = None  # what ended the link (a TLS alert, a reset), for the reason

    def recv(self, size: int) -> bytes:
        buf = self._buf
        if not buf:
            try:
                data = self._sock.recv(max(size, _READ_CHUNK))
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # no data yet: paho selects again
            except OSError as err:
                self.error = err
                raise
            if not data:
                return b""
            self.received += len(data)
            self.last_received = time.monotonic()
            if len(data) <= size:
                return data
            buf += data
        out = bytes(buf[:size])
        del buf[:size]
        return out

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) + inner

    @property
    def buffered(self) -> int:
        """Bytes read from the socket that paho has not taken yet."""
        return len(self._buf)

    def send(self, data: bytes | bytearray) -> int:
        return self._sock.send(data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str) -> Any:  # close, setblocking, settimeout...: the socket's own
        return getattr(self._sock, name)


class _BufferedClient(paho.Client):
    """paho's client with a chunked reader, packets handled in bursts, and one wake-up per ack burst.

    Overrides three private paho 2.x methods (`_create_socket`, `loop_read`'s
    packet count, `_packet_queue`'s wake-up byte); setup.cfg pins paho-mqtt
    below 3 and the MQTT client tests cover the behaviour.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffered: _BufferedSocket | None = None
        self._wake_armed = False

    @property
    def buffered_socket(self) -> _BufferedSocket | None:
        """The current connection's socket wrapper (None before the first connect)."""
        return self._buffered

    @property
    def last_received(self) -> float:
        """Monotonic time of the last bytes from the broker (0 before any)."""
        sock = self._buffered
        return sock.last_received if sock is not None else 0.0

    def _create_socket(self) -> Any:
        sock = self._buffered = _BufferedSocket(super()._create_socket())
        return sock

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        sock = self._buffered
        if sock is None:
            return rc
        # every complete packet already read: no select() and no recv() per packet
        while rc == paho.MQTT_ERR_SUCCESS and sock.buffered > 0:
            if self._sock is None:  # disconnected meanwhile
                break
            rc = super().loop_read(max_packets)
        return rc

    def loop_write(self) -> paho.MQTTErrorCode:
        self._wake_armed = False  # before the queue is drained: a packet queued later wakes the loop again
        return super().loop_write()

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: Any = None) -> paho.MQTTErrorCode:
        # paho 2.2's _packet_queue, but the wake-up byte is sent once per burst: not from paho's own
        # thread (it writes after its callbacks) and not while an earlier byte has not been served.
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": info})
        thread = self._thread
        if thread is None or (thread is not threading.current_thread() and not self._wake_armed):
            self._wake_armed = thread is not None
            sockpair = self._sockpairW
            if sockpair is not None:
                try:
                    sockpair.send(b"0")
                except (BlockingIOError, OSError):
                    pass
        if thread is None and self._on_socket_register_write is None and self._in_callback_mutex.acquire(False):
            self._in_callback_mutex.release()
            return self.loop_write()
        self._call_socket_register_write()
        return paho.MQTT_ERR_SUCCESS
