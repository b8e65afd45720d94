"""Network namespaces with a veth pair for tests: a real host that answers, then does not.

`veth_namespace()` creates a namespace, a veth pair with the host end in this
namespace and the peer end inside the new one, gives both an address, and
removes all of it on exit, whatever happened. Setting the *peer* end down makes
the far address silent (packets are dropped at the host end, which loses its
carrier but keeps its route). A safety `unreachable` route for the pair's
subnet keeps probes from ever leaking to the default gateway, even if the host
end goes down and its connected route is flushed.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2; tests call
`netns_available()` and skip with its reason when it says no.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = ["NetnsError", "VethNamespace", "netns_available", "veth_namespace"]

# 198.18.0.0/15 is reserved for benchmarking (RFC 2544): never a real device.
_POOL = ipaddress.ip_network("198.18.0.0/15")
_SAFETY_METRIC = 4242
_counter = itertools.count()
_lock = threading.Lock()
_available: tuple[bool, str] | None = None


class NetnsError(RuntimeError):
    """An `ip` command failed; the message holds the command and its stderr."""


@dataclass(frozen=True)
class VethNamespace:
    """A live namespace: `peer_address` (inside it) answers pings from this namespace."""

    name: str
    host_if: str
    peer_if: str
    host_address: str
    peer_address: str
    subnet: str

    def set_link(self, up: bool, *, side: Literal["peer", "host"] = "peer") -> None:
        """Bring one end of the pair up or down (the peer end by default, see module doc)."""
        state = "up" if up else "down"
        if side == "peer":
            self.run("ip", "link", "set", self.peer_if, state)
        else:
            _ip("link", "set", self.host_if, state)

    def run(self, *argv: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace; raise with its stderr if it fails."""
        return _run(["ip", "netns", "exec", self.name, *argv], timeout_s)


def netns_available() -> tuple[bool, str]:
    """Whether namespaces and veth pairs can be created here, and if not, why (cached)."""
    global _available
    with _lock:
        if _available is None:
            _available = _check()
        return _available


def _check() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return False, "iproute2 `ip` command not found"
    name = f"fwchk-{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.SubprocessError, NetnsError) as err:
        return False, f"cannot create a network namespace: {err}"
    try:
        _run(["ip", "netns", "exec", name, "ip", "link", "add", "fwchk0", "type", "veth",
              "peer", "name", "fwchk1"], 10.0)
    except (OSError, subprocess.SubprocessError, NetnsError) as err:
        return False, f"cannot create a veth pair: {err}"
    finally:
        _quiet("ip", "netns", "del", name)
    return True, "network namespaces and veth pairs available"


@contextmanager
def veth_namespace(
    host_cidr: str | None = None, peer_cidr: str | None = None
) -> Iterator[VethNamespace]:
    """Create a namespace + veth pair (free /30 from 198.18.0.0/15 unless given); clean up always.

    `host_cidr`/`peer_cidr` are interface addresses with prefix, e.g. "198.18.7.1/30".
    """
    n = next(_counter)
    pid = os.getpid()
    name = f"fwtest-{pid}-{n}"
    host_if, peer_if = f"fwh{pid:x}x{n}"[:15], f"fwp{pid:x}x{n}"[:15]
    if host_cidr is None or peer_cidr is None:
        host_cidr, peer_cidr = _free_pair(pid, n)
    host_net = ipaddress.ip_interface(host_cidr)
    subnet = str(host_net.network)
    safety_route = False
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", name)
        _ip("route", "add", "unreachable", subnet, "metric", str(_SAFETY_METRIC))
        safety_route = True
        _ip("addr", "add", host_cidr, "dev", host_if)
        _ip("link", "set", host_if, "up")
        ns = VethNamespace(
            name, host_if, peer_if,
            str(host_net.ip), str(ipaddress.ip_interface(peer_cidr).ip), subnet,
        )
        ns.run("ip", "link", "set", "lo", "up")
        ns.run("ip", "addr", "add", peer_cidr, "dev", peer_if)
        ns.run("ip", "link", "set", peer_if, "up")
        yield ns
    finally:
        _quiet("ip", "link", "del", host_if)  # removes the peer end too
        _quiet("ip", "netns", "del", name)
        if safety_route:
            _quiet("ip", "route", "del", "unreachable", subnet, "metric", str(_SAFETY_METRIC))


def _free_pair(pid: int, n: int) -> tuple[str, str]:
    """A /30 of the benchmark range that no route on this host uses yet."""
    blocks = _POOL.num_addresses // 4
    start = (pid * 97 + n * 7919) % blocks
    used = _run(["ip", "-4", "route", "show", "table", "all"], 10.0).stdout
    for i in range(blocks):
        net = ipaddress.ip_network((int(_POOL.network_address) + 4 * ((start + i) % blocks), 30))
        if str(net.network_address) not in used and str(net.network_address + 1) not in used:
            hosts = list(net.hosts())
            return f"{hosts[0]}/30", f"{hosts[1]}/30"
    raise RuntimeError("no free /30 left in 198.18.0.0/15")


def _ip(*args: str) -> None:
    _run(["ip", *args], 10.0)


def _run(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _quiet(*argv: str) -> None:
    subprocess.run(list(argv), capture_output=True, timeout=10, check=False)
