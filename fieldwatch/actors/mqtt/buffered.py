"""paho's client made cheaper per packet: the socket read in 64 KiB chunks, one loop wake-up per burst.

paho reads a packet with three or more `recv` calls and wakes its loop with one
`send` per queued packet; each is a system call that lets go of the GIL, and in
a daemon whose other threads are busy (parsing, the SQLite writer) every such
release can cost a wait for the GIL to come back. `BufferedClient` reads the
socket in 64 KiB chunks, handles every packet already buffered before it
selects again, and wakes its loop once per burst of acks instead of once per ack.
`BufferedSocket` also notes when the last bytes came (the keepalive watchdog's
input) and what ended the link (for the reason).
"""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as paho

__all__ = ["BufferedClient", "BufferedSocket"]

_READ_CHUNK = 65536


class BufferedSocket:
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


class BufferedClient(paho.Client):
    """paho's client with a chunked reader, packets handled in bursts, and one wake-up per ack burst.

    Overrides three private paho 2.x methods (`_create_socket`, `loop_read`'s
    packet count, `_packet_queue`'s wake-up byte); setup.cfg pins paho-mqtt
    below 3 and the MQTT client tests cover the behaviour.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffered: BufferedSocket | None = None
        self._wake_armed = False

    @property
    def buffered_socket(self) -> BufferedSocket | None:
        """The current connection's socket wrapper (None before the first connect)."""
        return self._buffered

    @property
    def last_received(self) -> float:
        """Monotonic time of the last bytes from the broker (0 before any)."""
        sock = self._buffered
        return sock.last_received if sock is not None else 0.0

    def _create_socket(self) -> Any:
        sock = self._buffered = BufferedSocket(super()._create_socket())
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

    def _packet_queue(
        self, command: int, packet: bytes | bytearray, mid: int, qos: int, info: Any = None
    ) -> paho.MQTTErrorCode:
        # paho 2.2's _packet_queue, but the wake-up byte is sent once per burst: not from paho's own
        # thread (it writes after its callbacks) and not while an earlier byte has not been served.
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
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
