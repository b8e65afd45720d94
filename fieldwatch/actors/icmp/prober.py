"""The shared ICMP prober: one socket per address family and one receiver for the process.

A raw ICMP socket sees every ICMP reply on the machine, so a socket per host costs
N-squared work; here every echo request goes out through the one icmplib socket of
its family, and one receiver thread demultiplexes the replies by (id, sequence).
With unprivileged (datagram) sockets the kernel rewrites the id to the socket's own
ident and only delivers our replies, so the sequence (plus the address) is the key.

Sends and timeouts run on one timer thread (a private `Scheduler`), replies on one
receiver thread; a probe's callback runs once, on one of these two threads.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from icmplib import ICMPRequest
from icmplib.exceptions import ICMPLibError, SocketUnavailableError, TimeoutExceeded

from fieldwatch.actors.icmp.capability import (
    ECHO_REPLY,
    ICMP_ERRORS,
    HostNotResolved,
    detect,
    open_socket,
    resolve,
)
from fieldwatch.actors.scheduler import Scheduler

__all__ = [
    "HostNotResolved",
    "ProbeResult",
    "Prober",
    "ResultCallback",
    "resolve",
    "shared_prober",
    "stop_shared_prober",
]

logger = logging.getLogger(__name__)

_PAYLOAD = b"fieldwatch icmp probe".ljust(56, b".")
_SEQ_SPACE = 1 << 16


@dataclass(slots=True, frozen=True)
class ProbeResult:
    """One probe (`sent` echo requests to `address`): replies, RTTs and any error."""

    address: str
    sent: int
    received: int
    rtts: tuple[float, ...]  # seconds, in arrival order
    started_at: float  # time.time() when the first request was sent
    lateness_s: float  # first send vs the requested due time
    error: str | None = None  # why requests failed (send error, unreachable), never raised

    @property
    def loss(self) -> float:
        """Fraction of requests without a reply, 0..1 (1.0 when nothing could be sent)."""
        return 1.0 if self.sent == 0 else 1.0 - self.received / self.sent

    @property
    def ok(self) -> bool:
        """Whether at least one reply came back."""
        return self.received > 0

    @property
    def rtt_min(self) -> float | None:
        """Smallest round-trip time in seconds, None without replies."""
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        """Mean round-trip time in seconds, None without replies."""
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        """Largest round-trip time in seconds, None without replies."""
        return max(self.rtts) if self.rtts else None


ResultCallback = Callable[[ProbeResult], None]


@dataclass(slots=True, eq=False)
class _Probe:
    """Mutable bookkeeping of one submitted probe; guarded by Prober._lock."""

    address: str  # as given: sent to
    match: str  # normalized, without scope: compared with reply sources
    version: int  # 4 or 6; 0 when `address` is not an IP address
    count: int
    timeout_s: float
    interval_s: float
    callback: ResultCallback
    due: float  # monotonic
    attempted: int = 0
    sent: int = 0
    outstanding: int = 0
    rtts: list[float] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)
    started_at: float = 0.0
    lateness_s: float = 0.0
    error: str | None = None
    done: bool = False

    def result(self) -> ProbeResult:
        return ProbeResult(
            self.address, self.sent, len(self.rtts), tuple(self.rtts),
            self.started_at, self.lateness_s, self.error,
        )


class Prober:
    """Sends echo requests for many probes through one socket per family; see the module doc.

    `submit()` never blocks and never raises for network errors: every probe ends in
    exactly one callback with a ProbeResult. Probes pending at `stop()` get none.
    """

    def __init__(self, *, privileged: bool | None = None) -> None:
        self._privileged_arg = privileged
        self._privileged = False
        self._ident = 0  # our ICMP id with raw sockets; 0 = the kernel's (datagram sockets)
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], tuple[_Probe, Any]] = {}
        self._next_seq = random.randrange(_SEQ_SPACE)
        self._sockets: dict[int, Any] = {}  # version -> icmplib socket
        self._socket_errors: dict[int, str] = {}
        self._scheduler = Scheduler("fieldwatch-icmp-sender")
        self._receiver: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._running = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Pick the socket mode (capability probe unless given) and start both threads."""
        if self._running:
            return
        self._privileged = (
            detect().privileged if self._privileged_arg is None else self._privileged_arg
        )
        self._ident = random.randrange(1, 0xFFFF) if self._privileged else 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._running = True
        self._scheduler.start()
        self._receiver = threading.Thread(
            target=self._receive_loop, name="fieldwatch-icmp-receiver", daemon=True
        )
        self._receiver.start()

    def stop(self) -> None:
        """Stop both threads (joined within 2 s) and close the sockets."""
        with self._lock:
            if not self._running:
                return
            self._running = False
        self._scheduler.stop(timeout_s=1.0)
        self._wake()
        if self._receiver is not None and self._receiver is not threading.current_thread():
            self._receiver.join(1.0)
        with self._lock:
            sockets = list(self._sockets.values())
            self._sockets.clear()
            self._pending.clear()
        for sock in sockets:
            sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def privileged(self) -> bool:
        """Whether raw sockets are used (valid after start())."""
        return self._privileged

    @property
    def family_sockets(self) -> int:
        """How many ICMP sockets are open (at most one per address family)."""
        with self._lock:
            return len(self._sockets)

    @property
    def outstanding_requests(self) -> int:
        """Echo requests sent and still waiting for a reply or their timeout."""
        with self._lock:
            return len(self._pending)

    # -- requests --------------------------------------------------------------

    def submit(
        self,
        address: str,
        *,
        count: int,
        timeout_s: float,
        callback: ResultCallback,
        due: float | None = None,
        interval_s: float = 0.2,
    ) -> None:
        """Probe `address` (an IP, not a name) with `count` echo requests starting at `due`.

        `due` is a time.monotonic() value (None: now). `callback` is called once, from a
        prober thread, when every reply is in or `timeout_s` after the last send; it must
        be quick (tell an actor). Raises only for invalid arguments or a stopped prober.
        """
        if count < 1 or timeout_s <= 0 or interval_s < 0:
            raise ValueError("count must be >= 1, timeout_s > 0 and interval_s >= 0")
        if not self._running:
            raise RuntimeError("the ICMP prober is not running")
        version: int
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            match, version, error = ip.compressed, ip.version, None
        except ValueError:
            match, version, error = address, 0, f"not an IP address: {address!r}"
        when = time.monotonic() if due is None else due
        probe = _Probe(address, match, version, count, timeout_s, interval_s, callback, when)
        probe.error = error
        self._scheduler.call_at(when, functools.partial(self._send_next, probe))

    # -- the sender (timer thread) ---------------------------------------------

    def _send_next(self, probe: _Probe) -> None:
        now = time.monotonic()
        if probe.attempted == 0:
            probe.started_at = time.time()
            probe.lateness_s = max(0.0, now - probe.due)
        sock: Any = self._socket_for(probe.version) if probe.version else None
        request: Any = None
        key = (0, 0)
        with self._lock:
            if probe.done or not self._running:
                return
            if sock is None:  # nothing can be sent: give up the remaining requests
                probe.error = probe.error or self._socket_errors.get(probe.version)
                probe.attempted = probe.count - 1
            else:
                allocated = self._allocate_key()
                if allocated is None:
                    probe.error = probe.error or "too many outstanding echo requests"
                else:
                    key = allocated
                    request = ICMPRequest(
                        probe.address, self._ident, key[1], payload=_PAYLOAD
                    )
                    self._pending[key] = (probe, request)
                    probe.keys.append(key)
                    probe.outstanding += 1
                    probe.sent += 1
            probe.attempted += 1  # after registering, so the receiver cannot finish early
        if request is not None:
            try:
                sock.send(request)
            except ICMPLibError as err:
                with self._lock:
                    if self._pending.pop(key, None) is not None:
                        probe.outstanding -= 1
                        probe.sent -= 1
                    probe.error = probe.error or f"send failed: {err}"
        with self._lock:
            if probe.attempted < probe.count:
                nxt = probe.due + probe.attempted * probe.interval_s
                result = None
            else:
                nxt = time.monotonic() + probe.timeout_s
                result = self._finish_if_complete(probe)
        if result is not None:
            _deliver(probe.callback, result)
        elif probe.attempted < probe.count:
            self._scheduler.call_at(nxt, functools.partial(self._send_next, probe))
        else:
            self._scheduler.call_at(nxt, functools.partial(self._expire, probe))

    def _expire(self, probe: _Probe) -> None:
        with self._lock:
            result = None if probe.done else self._finish(probe)
        if result is not None:
            _deliver(probe.callback, result)

    def _allocate_key(self) -> tuple[int, int] | None:
        """The next free (id, sequence); the 16-bit sequence wraps around. Under _lock."""
        for _ in range(_SEQ_SPACE):
            seq = self._next_seq
            self._next_seq = (seq + 1) % _SEQ_SPACE
            if (self._ident, seq) not in self._pending:
                return (self._ident, seq)
        return None

    def _finish_if_complete(self, probe: _Probe) -> ProbeResult | None:
        """Finish `probe` if every request went out and none awaits a reply. Under _lock."""
        if probe.done or probe.attempted < probe.count or probe.outstanding > 0:
            return None
        return self._finish(probe)

    def _finish(self, probe: _Probe) -> ProbeResult:
        """Mark `probe` done and forget its unanswered requests. Under _lock."""
        probe.done = True
        for key in probe.keys:
            entry = self._pending.get(key)
            if entry is not None and entry[0] is probe:  # the key may be reused by now
                del self._pending[key]
        return probe.result()

    def _socket_for(self, version: int) -> Any:
        """The socket of this family, opened on first use; None (error logged once) if it fails."""
        sock = self._sockets.get(version)
        if sock is not None:
            return sock
        try:
            sock = open_socket(version, self._privileged)
        except ICMPLibError as err:
            message = f"cannot open an ICMPv{version} socket: {err}"
            if version not in self._socket_errors:
                logger.error("%s", message)
            self._socket_errors[version] = message
            return None
        with self._lock:
            self._sockets[version] = sock
        self._socket_errors.pop(version, None)
        self._wake()  # let the receiver select on the new socket
        return sock

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except OSError:  # closed by stop()
            pass

    # -- the receiver ----------------------------------------------------------

    def _receive_loop(self) -> None:
        while self._running:
            with self._lock:
                by_fd = {s.sock.fileno(): (v, s) for v, s in self._sockets.items()}
            try:
                readable, _, _ = select.select([self._wake_r, *by_fd], [], [], 0.5)
            except (OSError, ValueError):  # a socket closed by stop()
                continue
            for fd in readable:
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                    continue
                version, sock = by_fd[fd]
                try:
                    reply = sock.receive(None, 1.0)  # readable: returns at once
                except TimeoutExceeded:
                    continue
                except SocketUnavailableError:
                    return
                except ICMPLibError as err:
                    logger.debug("ICMPv%d receive: %s", version, err)
                    continue
                self._on_reply(version, reply)

    def _on_reply(self, version: int, reply: Any) -> None:
        kind = reply.type
        if kind != ECHO_REPLY[version] and (not self._privileged or kind not in ICMP_ERRORS[version]):
            return
        if self._privileged and reply.id != self._ident:
            return  # another process's ping: a raw socket sees them all
        with self._lock:
            entry = self._pending.get((self._ident, reply.sequence))
            if entry is None:
                return
            probe, request = entry
            if kind == ECHO_REPLY[version]:
                if not _same_address(reply.source, probe.match):
                    return
                probe.rtts.append(max(0.0, reply.time - request.time))
            else:
                probe.error = probe.error or (
                    f"{ICMP_ERRORS[version][kind]} (code {reply.code}) from {reply.source}"
                )
            del self._pending[(self._ident, reply.sequence)]
            probe.outstanding -= 1
            result = self._finish_if_complete(probe)
        if result is not None:
            _deliver(probe.callback, result)


def _deliver(callback: ResultCallback, result: ProbeResult) -> None:
    try:
        callback(result)
    except Exception:  # supervision boundary: a caller's bug must not kill the prober threads
        logger.exception("ICMP probe callback failed for %s", result.address)


def _same_address(source: str, match: str) -> bool:
    if source == match:
        return True
    try:
        return ipaddress.ip_address(source.split("%", 1)[0]).compressed == match
    except ValueError:
        return False


# -- the process-wide instance -------------------------------------------------

_shared_lock = threading.Lock()
_shared: Prober | None = None


def shared_prober() -> Prober:
    """The process's one prober, started on first use (raises IcmpUnavailable if it cannot)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            prober = Prober()
            prober.start()
            _shared = prober
        return _shared


def stop_shared_prober() -> None:
    """Stop the process's prober (at shutdown, after the ICMP actors)."""
    global _shared
    with _shared_lock:
        prober, _shared = _shared, None
    if prober is not None:
        prober.stop()
