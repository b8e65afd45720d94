"""Echo requests and replies in batches: libc `sendmmsg` / `recvmmsg` through ctypes (Linux).

Each `sock.sendto` / `sock.recvmsg` releases and retakes the GIL; in a daemon with
other busy threads every release can hand the GIL over and the prober thread then
waits (and is woken) to get it back, which cost more CPU than the packet itself. One
`sendmmsg` sends a pass's requests and one `recvmmsg` reads up to `slots` replies
(each with its SO_TIMESTAMPNS receive timestamp) with one release each.

`MmsgSocket.create()` returns None where this is not available (not Linux, an
architecture whose struct layout is not the one below, no such libc function): the
prober then uses wire.py's per-packet calls, which work everywhere. A call that fails
with ENOSYS (old kernel, seccomp) turns the object off (`usable` False) and the caller
falls back for good.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from fieldwatch.actors.icmp.wire import _SO_TIMESTAMPNS, PAYLOAD, Reply, _parse, echo_header

__all__ = ["MmsgSocket", "Unsupported"]

# 64-bit Linux (glibc and musl share the kernel layout there): size_t lengths, 8-byte pointers.
_ARCHES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
_MSG_DONTWAIT = 0x40
_NAME_SIZE = 28  # sizeof(struct sockaddr_in6) >= sizeof(struct sockaddr_in)
_CONTROL_SIZE = 64  # room for one SCM_TIMESTAMPNS (CMSG_SPACE(16) = 32)
_BUFFER_SIZE = 2048
_PACKET_SIZE = 8 + len(PAYLOAD)


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_MMSG_SIZE = ctypes.sizeof(_Mmsghdr)


class Unsupported(OSError):
    """sendmmsg failed with ENOSYS: requests from `index` on were not sent; `failed` before it."""

    def __init__(self, index: int, failed: list[tuple[int, OSError]]) -> None:
        super().__init__(errno.ENOSYS, os.strerror(errno.ENOSYS))
        self.index = index
        self.failed = failed


def _libc_calls() -> tuple[Any, Any] | None:
    if sys.platform != "linux" or platform.machine().lower() not in _ARCHES or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        send, recv = libc.sendmmsg, libc.recvmmsg
    except (OSError, AttributeError):
        return None
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    send.restype = ctypes.c_int
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recv.restype = ctypes.c_int
    return send, recv


_CALLS: tuple[Any, Any] | None | bool = False  # False: not looked up yet


def _calls() -> tuple[Any, Any] | None:
    global _CALLS
    if _CALLS is False:
        _CALLS = _libc_calls()
    return _CALLS  # type: ignore[return-value]


def _array(count: int, size: int) -> tuple[Any, int]:
    buffer = (ctypes.c_char * (count * size))()
    return buffer, ctypes.addressof(buffer)


class MmsgSocket:
    """Batched sends and reads of echo messages on one bare ICMP socket (see the module doc)."""

    def __init__(self, sock: socket.socket, version: int, calls: tuple[Any, Any], slots: int) -> None:
        self._sock = sock
        self._version = version
        self._family = socket.AF_INET if version == 4 else socket.AF_INET6
        self._namelen = 16 if version == 4 else 28
        self._sendmmsg, self._recvmmsg = calls
        self.slots = slots
        self.usable = True
        self._names: dict[str, bytes] = {}  # address -> packed sockaddr
        # Sending: slot i = packet i (our payload prefilled), name i, iovec i; fixed pointers.
        self._out, out_at = _array(slots, _PACKET_SIZE)
        self._out_view = memoryview(self._out).cast("B")
        self._out_names, out_names_at = _array(slots, _NAME_SIZE)
        self._out_names_view = memoryview(self._out_names).cast("B")
        self._out_iov = (_Iovec * slots)()
        self._out_msgs = (_Mmsghdr * slots)()
        self._out_msgs_at = ctypes.addressof(self._out_msgs)
        for i in range(slots):
            self._out_view[i * _PACKET_SIZE + 8:(i + 1) * _PACKET_SIZE] = PAYLOAD
            self._out_iov[i].iov_base, self._out_iov[i].iov_len = out_at + i * _PACKET_SIZE, _PACKET_SIZE
            hdr = self._out_msgs[i].msg_hdr
            hdr.msg_name, hdr.msg_namelen = out_names_at + i * _NAME_SIZE, self._namelen
            hdr.msg_iov, hdr.msg_iovlen = ctypes.addressof(self._out_iov[i]), 1
        # Reading: slot i = buffer i, name i, control i.
        self._in, in_at = _array(slots, _BUFFER_SIZE)
        self._in_view = memoryview(self._in).cast("B")
        self._in_names, in_names_at = _array(slots, _NAME_SIZE)
        self._in_names_view = memoryview(self._in_names).cast("B")
        self._in_control, in_control_at = _array(slots, _CONTROL_SIZE)
        self._in_control_view = memoryview(self._in_control).cast("B")
        self._in_iov = (_Iovec * slots)()
        self._in_msgs = (_Mmsghdr * slots)()
        self._in_msgs_at = ctypes.addressof(self._in_msgs)
        for i in range(slots):
            self._in_iov[i].iov_base, self._in_iov[i].iov_len = in_at + i * _BUFFER_SIZE, _BUFFER_SIZE
            hdr = self._in_msgs[i].msg_hdr
            hdr.msg_name = in_names_at + i * _NAME_SIZE
            hdr.msg_iov, hdr.msg_iovlen = ctypes.addressof(self._in_iov[i]), 1
            hdr.msg_control = in_control_at + i * _CONTROL_SIZE
        self._reset_in(slots)

    @classmethod
    def create(cls, sock: socket.socket, version: int, slots: int = 64) -> MmsgSocket | None:
        """The batched I/O of `sock`, or None where sendmmsg/recvmmsg cannot be used."""
        calls = _calls()
        if calls is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        return cls(sock, version, calls, slots)

    def _reset_in(self, count: int) -> None:
        """Restore the lengths the kernel rewrote in the first `count` read slots."""
        for i in range(count):
            hdr = self._in_msgs[i].msg_hdr
            hdr.msg_namelen, hdr.msg_controllen = _NAME_SIZE, _CONTROL_SIZE

    def _name(self, address: str) -> bytes:
        name = self._names.get(address)
        if name is None:
            if len(self._names) >= 65536:
                self._names.clear()
            host, _, scope = address.partition("%")
            raw = socket.inet_pton(self._family, host)  # OSError for a bad address, as sendto
            if self._version == 4:
                name = struct.pack("=H", socket.AF_INET) + b"\x00\x00" + raw + bytes(8)
            else:
                scope_id = (int(scope) if scope.isdigit() else socket.if_nametoindex(scope)) if scope else 0
                name = struct.pack("=H", socket.AF_INET6) + b"\x00\x00" + bytes(4) + raw + struct.pack("=I", scope_id)
            self._names[address] = name
        return name

    def send(self, requests: Sequence[tuple[str, int, int]], stamp: Callable[[int, int], None]) -> list[tuple[int, OSError]]:
        """Send echo requests (address, id, sequence) in calls of at most `slots`.

        `stamp(start, end)` is called just before the call that sends requests[start:end]
        (the caller notes the send time). Returns (index, error) for the requests that
        could not be sent. ENOSYS turns the object off and raises Unsupported.
        """
        failed: list[tuple[int, OSError]] = []
        slots, version = self.slots, self._version
        out, names = self._out_view, self._out_names_view
        for start in range(0, len(requests), slots):
            chunk = requests[start:start + slots]
            filled: list[int] = []  # request index of each filled slot
            for index, (address, ident, sequence) in enumerate(chunk, start):
                try:
                    name = self._name(address)
                except (OSError, ValueError) as err:
                    failed.append((index, err if isinstance(err, OSError) else OSError(errno.EINVAL, str(err))))
                    continue
                slot = len(filled)
                at = slot * _NAME_SIZE
                names[at:at + len(name)] = name
                out[slot * _PACKET_SIZE:slot * _PACKET_SIZE + 8] = echo_header(version, ident, sequence)
                filled.append(index)
            stamp(start, start + len(chunk))
            done = 0
            while done < len(filled):
                sent = self._sendmmsg(self._sock.fileno(), self._out_msgs_at + done * _MMSG_SIZE, len(filled) - done, 0)
                if sent > 0:
                    done += sent
                    continue
                code = ctypes.get_errno() if sent < 0 else errno.EIO
                if code == errno.EINTR:
                    continue
                if code == errno.ENOSYS:
                    self.usable = False
                    first = filled[done]
                    raise Unsupported(first, [item for item in failed if item[0] < first])
                # The request in slot `done` failed (a partial count reports no error: the
                # retry starting at it returns that error): it is given up, the rest go on.
                failed.append((filled[done], OSError(code, os.strerror(code))))
                done += 1
        failed.sort(key=lambda item: item[0])
        return failed

    def read(self, has_ip_header: bool, limit: int) -> tuple[list[Reply], int]:
        """Every message waiting (up to `limit`), parsed (junk skipped), and how many were read."""
        replies: list[Reply] = []
        total = 0
        version, family = self._version, self._family
        buffers, names, control = self._in_view, self._in_names_view, self._in_control_view
        msgs = self._in_msgs
        while total < limit:
            want = min(self.slots, limit - total)
            got = self._recvmmsg(self._sock.fileno(), self._in_msgs_at, want, _MSG_DONTWAIT, None)
            if got <= 0:
                code = ctypes.get_errno() if got < 0 else errno.EAGAIN
                if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    break
                if code == errno.ENOSYS:
                    self.usable = False
                raise OSError(code, os.strerror(code))
            now = time.time()
            for i in range(got):
                msg = msgs[i]
                hdr = msg.msg_hdr
                stamp = None
                if hdr.msg_controllen >= 32:
                    at = i * _CONTROL_SIZE
                    length, level, kind = struct.unpack_from("=Qii", control, at)
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and length >= 32:
                        seconds, nanos = struct.unpack_from("=qq", control, at + 16)
                        stamp = seconds + nanos / 1e9
                at = i * _NAME_SIZE
                if version == 4:
                    source = socket.inet_ntop(family, names[at + 4:at + 8])
                else:
                    source = socket.inet_ntop(family, names[at + 8:at + 24])
                data = bytes(buffers[i * _BUFFER_SIZE:i * _BUFFER_SIZE + msg.msg_len])
                reply = _parse(data, version, has_ip_header, source, stamp or now)
                if reply is not None:
                    replies.append(reply)
            self._reset_in(got)
            total += got
            if got < want:
                break
        return replies, total
