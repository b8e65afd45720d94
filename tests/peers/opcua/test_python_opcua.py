"""fieldwatch against python-opcua (`opcua` 0.98, the library the seeds' systems used): readings and failure detection.

The server runs as a child process on a free port on 127.0.0.1, so the tests can
freeze it (SIGSTOP: sockets stay open, nothing answers) and kill it (SIGKILL).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from fieldwatch.actors.opcua.schema import NodeConfig, OpcuaOptions
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.harness import Harness, fast_policy
from tests.peers.opcua.opcua_peers import PeerProcess
from tests.waiting import wait_for

#: fast_policy(): health checks every 0.5 s, backoff 0.2 s .. 1 s; requests time out after TIMEOUT_S.
HEALTH_INTERVAL_S = 0.5
TIMEOUT_S = 1.0
#: SPEC §9: one health interval plus the timeout, and 1.5 s for a loaded machine.
DETECT_S = HEALTH_INTERVAL_S + TIMEOUT_S + 1.5
RECOVER_S = 1.0 + TIMEOUT_S + 3.0  # the backoff in force (max 1 s), a connect, and slack


def _start(fw: Harness, url: str) -> None:
    nodes = (
        NodeConfig("ns=2;s=Counter", "counter", poll_s=0.3),
        NodeConfig("ns=2;s=Tank1.Level", "level", mode="subscribe", poll_s=0.2),
    )
    opts = OpcuaOptions(url=url, nodes=nodes, timeout_s=TIMEOUT_S, stale_after_s=5.0)
    fw.start([SiteConfig("peer", endpoints=(EndpointConfig("plc", "opcua", opts),))], policy=fast_policy())


def _readings(fw: Harness, name: str, at_least: int, since: float = 0.0) -> list[dict[str, object]]:
    def enough() -> list[dict[str, object]] | None:
        rows = [r for r in fw.readings("peer", "plc", name) if _received(r) >= since]
        return rows if len(rows) >= at_least else None

    return list(wait_for(enough, 10, what=f"{at_least} {name} readings"))


def _received(row: dict[str, object]) -> float:
    from fieldwatch.timeutil import parse_since

    value = row["received_at"]
    return value if isinstance(value, float) else parse_since(str(value))


@pytest.mark.peer(protocol="opcua", peer="python-opcua", case="security None: up with polled and subscribed readings")
def test_none_up_with_readings(
    fw: Harness, python_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    server = python_server()
    peer_version(server.version)
    _start(fw, server.url)
    fw.wait_state("peer", "plc", "up", timeout=15)
    counter = _readings(fw, "counter", 3)
    assert all(row["quality"] == "Good" for row in counter)
    level = _readings(fw, "level", 3)  # subscribed, changing twice a second
    assert len({row["value"] for row in level}) >= 2


@pytest.mark.peer(protocol="opcua", peer="python-opcua", case="SIGSTOP: down within bound, up after SIGCONT")
def test_frozen_server_detected_and_recovers(
    fw: Harness, python_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    server = python_server()
    _start(fw, server.url)
    fw.wait_state("peer", "plc", "up", timeout=15)
    server.signal(signal.SIGSTOP)
    started = time.monotonic()
    status = fw.wait_state("peer", "plc", "down", timeout=DETECT_S)
    detected = time.monotonic() - started
    assert detected <= DETECT_S and status.reason
    peer_version(server.version, f"down after {detected:.1f} s (bound {DETECT_S:g} s)")
    server.signal(signal.SIGCONT)
    thawed = time.time()
    fw.wait_state("peer", "plc", "up", timeout=RECOVER_S)
    assert _readings(fw, "counter", 1, since=thawed)


@pytest.mark.peer(protocol="opcua", peer="python-opcua", case="SIGKILL: down within bound, up after a restart")
def test_killed_server_detected_and_restart_recovers(
    fw: Harness, python_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    server = python_server()
    _start(fw, server.url)
    fw.wait_state("peer", "plc", "up", timeout=15)
    port = int(server.url.split(":")[2].split("/")[0])
    server.signal(signal.SIGKILL)
    started = time.monotonic()
    status = fw.wait_state("peer", "plc", "down", timeout=DETECT_S)
    detected = time.monotonic() - started
    assert status.reason and status.down_since is not None
    peer_version(server.version, f"down after {detected:.1f} s (bound {DETECT_S:g} s)")
    python_server(port)
    restarted = time.time()
    fw.wait_state("peer", "plc", "up", timeout=RECOVER_S + 5)  # the new process needs a moment to listen
    assert _readings(fw, "counter", 1, since=restarted)
