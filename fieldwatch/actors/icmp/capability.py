"""Which ICMP sockets this process may open: probed once, with a clear error if none.

Privileged raw sockets (root or CAP_NET_RAW) are preferred; otherwise Linux
"ping sockets" (SOCK_DGRAM, allowed for the groups in `net.ipv4.ping_group_range`).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from fieldwatch.errors import FieldwatchError

__all__ = ["Capability", "HostNotResolved", "IcmpUnavailable", "detect", "reset_cache"]

logger = logging.getLogger(__name__)

_PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")

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
