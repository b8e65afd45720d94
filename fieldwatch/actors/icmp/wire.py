"""ICMP echo packets on the wire: built and parsed here, sent and read on the bare socket.

icmplib's `send()` resolves the address (getaddrinfo), sets TTL and traffic class
(two setsockopt calls) and computes the checksum in Python for every request;
its `receive()` makes an object per reply. At thousands of probes a second that
was most of the prober's CPU, so the prober keeps icmplib for opening the
sockets (capability.py) and does the per-packet work itself: one prepared
payload, the checksum by arithmetic on two 16-bit words, and replies read in a
batch with the kernel's receive timestamp (so reading late does not add to the RTT).
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import time
from typing import Any, NamedTuple

__all__ = ["Reply", "echo_header", "echo_request", "enable_timestamps", "read_counted", "read_replies", "send_to"]

PAYLOAD = b"fieldwatch icmp probe".ljust(56, b".")
_ECHO_REQUEST = {4: 8, 6: 128}

# SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) of asm-generic Linux; Python's socket module lacks it.
_SO_TIMESTAMPNS = 35
_TIMESTAMP_ARCHES = frozenset({"x86_64", "amd64", "aarch64", "arm64", "i686", "armv7l"})
_CMSG_SPACE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0


def _payload_sum(payload: bytes) -> int:
    data = payload + b"\x00" * (len(payload) % 2)
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


_PAYLOAD_SUM = _payload_sum(PAYLOAD)
_HEADER = struct.Struct("!BBHHH")


def echo_header(version: int, ident: int, sequence: int) -> bytes:
    """The 8-byte ICMP header of an echo request (type 8 / 128) carrying our payload.

    Its checksum is valid for PAYLOAD. For ICMPv6 and datagram sockets the kernel
    rewrites the checksum (and the id); computing it anyway keeps one code path.
    """
    kind = _ECHO_REQUEST[version]
    total = (kind << 8) + ident + sequence + _PAYLOAD_SUM
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return _HEADER.pack(kind, 0, ~total & 0xFFFF, ident, sequence)


def echo_request(version: int, ident: int, sequence: int) -> bytes:
    """An echo request (type 8 / 128) with our payload and a valid ICMP checksum."""
    return echo_header(version, ident, sequence) + PAYLOAD


class Reply(NamedTuple):
    """One ICMP message read back: its type, code, the (id, sequence) it answers, source, time."""

    kind: int
    code: int
    ident: int
    sequence: int
    source: str
    received_at: float  # time.time(): the kernel's receive timestamp when available


def enable_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each received packet (True if it will)."""
    if sys.platform != "linux" or platform.machine().lower() not in _TIMESTAMP_ARCHES or not _CMSG_SPACE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def read_replies(sock: socket.socket, version: int, has_ip_header: bool, limit: int = 512) -> list[Reply]:
    """Every message waiting on the non-blocking `sock` (up to `limit`), parsed; junk skipped."""
    return read_counted(sock, version, has_ip_header, limit)[0]


def read_counted(sock: socket.socket, version: int, has_ip_header: bool, limit: int) -> tuple[list[Reply], int]:
    """read_replies, and how many messages were read (junk included): one recvmsg each."""
    replies: list[Reply] = []
    count = 0
    for count in range(limit):  # noqa: B007 (the count is returned)
        try:
            data, ancillary, _flags, address = sock.recvmsg(2048, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return replies, count
        stamp = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanos = struct.unpack_from("qq", payload)
                stamp = seconds + nanos / 1e9
        reply = _parse(data, version, has_ip_header, address[0], stamp or time.time())
        if reply is not None:
            replies.append(reply)
    return replies, limit


def _parse(data: bytes, version: int, has_ip_header: bool, source: str, at: float) -> Reply | None:
    offset = (data[0] & 0x0F) * 4 if has_ip_header and data else 0
    if len(data) < offset + 8:
        return None
    kind, code = data[offset], data[offset + 1]
    if kind in (0, 129):  # echo reply (v4 / v6): our id and sequence are in its header
        ident, sequence = struct.unpack_from("!HH", data, offset + 4)
        return Reply(kind, code, ident, sequence, source, at)
    # An error carries the start of the request it answers: its IP header, then its ICMP header.
    inner = offset + 8
    inner_header = (data[inner] & 0x0F) * 4 if version == 4 and len(data) > inner else 40
    at_id = inner + inner_header + 4
    if len(data) < at_id + 4:
        return None
    ident, sequence = struct.unpack_from("!HH", data, at_id)
    return Reply(kind, code, ident, sequence, source, at)


def send_to(sock: Any, packet: bytes, address: str) -> None:
    """Send on the bare socket (OSError on failure): no name lookup, no per-send options."""
    sock.sendto(packet, (address, 0))
