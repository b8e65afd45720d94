"""Capability probe (socket creation mocked: pure decision logic) and name resolution."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.actors.icmp import capability
from fieldwatch.actors.icmp.capability import Capability, HostNotResolved, IcmpUnavailable
from fieldwatch.actors.icmp.prober import resolve


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    capability.reset_cache()
    yield
    capability.reset_cache()


def _refuse(kinds: set[int]) -> Any:
    real = socket.socket

    def fake(family: int, kind: int, proto: int = 0) -> socket.socket:
        if kind in kinds:
            raise PermissionError(1, "Operation not permitted")
        return real(socket.AF_INET, socket.SOCK_DGRAM)  # a harmless stand-in to close

    return fake


def test_root_gets_raw_sockets_once() -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: raw sockets are not expected")
    first = capability.detect()
    assert first == Capability(True, first.detail) and "raw" in first.detail
    assert capability.detect() is first


def test_falls_back_to_datagram_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _refuse({socket.SOCK_RAW}))
    found = capability.detect()
    assert not found.privileged
    assert "ping_group_range" in found.detail and "Operation not permitted" in found.detail


def test_neither_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _refuse({socket.SOCK_RAW, socket.SOCK_DGRAM}))
    with pytest.raises(IcmpUnavailable) as first:
        capability.detect()
    message = str(first.value)
    assert "root" in message and "setcap cap_net_raw+ep" in message
    assert 'net.ipv4.ping_group_range="0 2147483647"' in message
    with pytest.raises(IcmpUnavailable) as again:  # cached: not probed twice
        capability.detect()
    assert again.value is first.value


def test_resolve_literals_and_hosts_file() -> None:
    assert resolve("127.0.0.1", 1.0) == "127.0.0.1"
    assert resolve("0:0::1", 1.0) == "::1"
    assert resolve("localhost", 2.0) in {"127.0.0.1", "::1"}


def test_resolve_reports_the_resolver_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS traffic from tests: the resolver's failure is simulated with its real message.
    def fail(*args: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(HostNotResolved) as err:
        resolve("plc.example", 1.0)
    assert err.value.reason == "[Errno -2] Name or service not known"


def test_resolve_invalid_name_fails_locally() -> None:
    with pytest.raises(HostNotResolved) as err:
        resolve("bad..name", 1.0)
    assert "label empty or too long" in err.value.reason


def test_resolve_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: object) -> object:
        release.wait(10.0)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    try:
        with pytest.raises(HostNotResolved) as err:
            resolve("slow.example", 0.2)
        assert err.value.reason == "resolving 'slow.example' timed out after 0.2 s"
    finally:
        release.set()
