"""What ICMP this process can do: which sockets it may open (probed once), opening them, names.

Privileged raw sockets (root or CAP_NET_RAW) are preferred; otherwise Linux
"ping sockets" (SOCK_DGRAM, allowed for the groups in `net.ipv4.ping_group_range`);
neither is an IcmpUnavailable error that names the fix. `resolve()` turns a host
name into the address the prober needs, with a timeout and the resolver's reason.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icmplib import ICMPv4Socket, ICMPv6Socket

from fieldwatch.errors import FieldwatchError

__all__ = [
    "ECHO_REPLY",
    "ICMP_ERRORS",
    "Capability",
    "HostNotResolved",
    "IcmpUnavailable",
    "detect",
    "open_socket",
    "reset_cache",
    "resolve",
]

logger = logging.getLogger(__name__)

_PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
_RCVBUF = 4 * 1024 * 1024
# Per family: the echo reply type and the error types that end one request early.
ECHO_REPLY = {4: 0, 6: 129}
ICMP_ERRORS = {
    4: {3: "destination unreachable", 11: "time exceeded"},
    6: {1: "destination unreachable", 3: "time exceeded"},
}
_SOL_RAW, _ICMP_FILTER, _ICMP6_FILTER = 255, 1, 1

_FIX = (
    "ICMP sockets are not available to this process. Fix one of: run fieldwatch as root; "
    "grant the raw-socket capability to the interpreter "
    "(`setcap cap_net_raw+ep $(readlink -f {python})`); or allow unprivileged ping sockets "
    "(`sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`)."
)


class IcmpUnavailable(FieldwatchError):
    """Neither raw nor datagram ICMP sockets can be opened; the message names the fix."""


class HostNotResolved(FieldwatchError):
    """A host name did not resolve; `reason` is the resolver's message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Capability:
    """The socket mode to use: `privileged` (raw) or not (datagram), and how it was found."""

    privileged: bool
    detail: str


_lock = threading.Lock()
_cached: Capability | IcmpUnavailable | None = None


def detect() -> Capability:
    """Probe once per process which ICMP sockets work; raise IcmpUnavailable if none does."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = _probe()
            if isinstance(_cached, Capability):
                logger.info("ICMP capability: %s", _cached.detail)
            else:
                logger.error("%s", _cached)
        result = _cached
    if isinstance(result, IcmpUnavailable):
        raise result
    return result


def reset_cache() -> None:
    """Forget the probed capability (tests only)."""
    global _cached
    with _lock:
        _cached = None


def _probe() -> Capability | IcmpUnavailable:
    try:
        _try_socket(socket.SOCK_RAW)
    except OSError as raw_err:
        raw_reason = f"raw socket: {raw_err}"
    else:
        return Capability(True, "privileged raw ICMP sockets (root or CAP_NET_RAW)")
    try:
        _try_socket(socket.SOCK_DGRAM)
    except OSError as dgram_err:
        message = _FIX.format(python=sys.executable)
        detail = f"{raw_reason}; datagram socket: {dgram_err} (ping_group_range={_group_range()})"
        return IcmpUnavailable(f"{message} [{detail}]")
    return Capability(
        False,
        f"unprivileged ICMP datagram sockets ({raw_reason}; "
        f"net.ipv4.ping_group_range={_group_range()})",
    )


def _try_socket(kind: int) -> None:
    sock = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)
    sock.close()


def _group_range() -> str:
    try:
        return " ".join(_PING_GROUP_RANGE.read_text().split())
    except OSError:
        return "unknown"


def open_socket(version: int, privileged: bool) -> Any:
    """A new icmplib socket for IPv`version`, tuned; raises icmplib's ICMPSocketError."""
    sock = (ICMPv4Socket if version == 4 else ICMPv6Socket)(privileged=privileged)
    _tune(sock.sock, version, privileged)
    return sock


def _tune(sock: socket.socket, version: int, privileged: bool) -> None:
    """Bigger receive buffer; on raw sockets, let only replies and errors through."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, _RCVBUF)
            break
        except OSError:
            continue
    if not privileged:
        return
    wanted = (ECHO_REPLY[version], *ICMP_ERRORS[version])
    try:
        if version == 4:
            mask = 0xFFFFFFFF
            for kind in wanted:
                mask &= ~(1 << kind)
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", mask))
        else:
            words = [0xFFFFFFFF] * 8
            for kind in wanted:
                words[kind >> 5] &= ~(1 << (kind & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *words))
    except OSError as err:  # only an optimisation: _on_reply filters by type anyway
        logger.debug("ICMPv%d filter not set: %s", version, err)


# -- name resolution (used by the actor, not by the prober) ---------------------

_resolver_lock = threading.Lock()
_resolver: concurrent.futures.ThreadPoolExecutor | None = None


def resolve(host: str, timeout_s: float) -> str:
    """Resolve `host` to one IP address within `timeout_s`; raise HostNotResolved(reason)."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="fieldwatch-resolve"
            )
        pool = _resolver
    future = pool.submit(socket.getaddrinfo, host, None, 0, socket.SOCK_DGRAM)
    try:
        infos = future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise HostNotResolved(f"resolving {host!r} timed out after {timeout_s:g} s") from None
    except (OSError, UnicodeError) as err:  # socket.gaierror, or an invalid IDNA label
        raise HostNotResolved(str(err)) from err
    if not infos:
        raise HostNotResolved(f"no address for {host!r}")
    return str(infos[0][4][0])
