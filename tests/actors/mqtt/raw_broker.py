"""A scripted MQTT 3.1.1 "broker" on a raw socket, for the one case no real broker does on demand.

It answers CONNECT (with the session-present flag the test sets), SUBSCRIBE and
PINGREQ, and otherwise sends only what the test tells it to: a PUBLISH with a
chosen packet id and DUP flag, on a chosen connection. PUBACKs it receives are
recorded. Only for tests that need a broker to redeliver deterministically.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

from tests.waiting import wait_for

__all__ = ["RawBroker"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = _read_exact(sock, 1)[0]
    length, shift = 0, 0
    while True:
        byte = _read_exact(sock, 1)[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, _read_exact(sock, length)


class RawBroker:
    """Listens on a free loopback port; one serving thread per accepted connection."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.session_present = False
        self.connections: list[socket.socket] = []
        self.pubacks: list[tuple[int, int]] = []  # (connection index, packet id)
        self._cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            with self._cond:
                index = len(self.connections)
                self.connections.append(sock)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(sock, index), daemon=True).start()

    def _serve(self, sock: socket.socket, index: int) -> None:
        try:
            while True:
                header, body = _read_packet(sock)
                kind = header >> 4
                if kind == 1:  # CONNECT
                    sock.sendall(bytes([0x20, 2, 1 if self.session_present else 0, 0]))
                elif kind == 8:  # SUBSCRIBE: grant QoS 1 to every filter
                    pid = body[:2]
                    filters, pos = 0, 2
                    while pos < len(body):
                        (size,) = struct.unpack("!H", body[pos:pos + 2])
                        pos += 2 + size + 1
                        filters += 1
                    payload = pid + bytes([1] * filters)
                    sock.sendall(bytes([0x90]) + _varint(len(payload)) + payload)
                elif kind == 12:  # PINGREQ
                    sock.sendall(bytes([0xD0, 0]))
                elif kind == 4:  # PUBACK
                    with self._cond:
                        self.pubacks.append((index, struct.unpack("!H", body[:2])[0]))
                        self._cond.notify_all()
                elif kind == 14:  # DISCONNECT
                    return
        except (ConnectionError, OSError):
            return
        finally:
            sock.close()

    def wait(self, predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
        """Block until predicate() holds (re-checked on every connection and PUBACK)."""
        try:
            wait_for(predicate, timeout_s, what=what, cond=self._cond)
        except AssertionError as err:
            raise AssertionError(f"{err}; pubacks {self.pubacks}") from None

    def publish(self, conn: int, topic: str, payload: bytes, mid: int, dup: bool = False) -> None:
        """Send a QoS 1 PUBLISH on connection `conn`."""
        encoded = topic.encode()
        body = struct.pack("!H", len(encoded)) + encoded + struct.pack("!H", mid) + payload
        header = 0x32 | (0x08 if dup else 0)
        self.connections[conn].sendall(bytes([header]) + _varint(len(body)) + body)

    def drop(self, conn: int) -> None:
        """Close connection `conn` abruptly (no DISCONNECT: the link is simply gone)."""
        try:
            self.connections[conn].shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._closed = True
        self._server.close()
        for sock in self.connections:
            try:
                sock.close()
            except OSError:
                pass
