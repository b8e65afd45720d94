"""Batched ICMP I/O (sendmmsg / recvmmsg through ctypes) on real loopback sockets, and its fallbacks."""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.actors.icmp import mmsg
from fieldwatch.actors.icmp.capability import detect, open_socket
from fieldwatch.actors.icmp.mmsg import MmsgSocket, Unsupported
from fieldwatch.actors.icmp.prober import Prober
from fieldwatch.actors.icmp.wire import Reply, enable_timestamps
from tests.actors.icmp.icmp_helpers import ResultSink
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(mmsg._calls() is None, reason="no sendmmsg/recvmmsg here (not 64-bit Linux)")  # noqa: SLF001

_IDENT = 0x4242


@pytest.fixture
def icmp4() -> Iterator[tuple[Any, bool]]:
    """An ICMPv4 socket as the prober opens it (raw if allowed, else datagram), non-blocking, stamped."""
    privileged = detect().privileged
    sock = open_socket(4, privileged)
    sock.sock.setblocking(False)
    assert enable_timestamps(sock.sock)
    yield sock, privileged
    sock.close()


def _read_all(batch: MmsgSocket, has_ip_header: bool, want: int) -> list[Reply]:
    replies: list[Reply] = []

    def enough() -> bool:  # a raw socket also sees other processes' pings: ours have our id
        replies.extend(r for r in batch.read(has_ip_header, 512)[0] if not has_ip_header or r.ident == _IDENT)
        return len(replies) >= want

    wait_for(enough, 5.0, what=f"{want} replies")
    return replies


def _send(batch: MmsgSocket, requests: list[tuple[str, int, int]]) -> tuple[list[tuple[int, OSError]], float]:
    stamps: list[float] = []
    failed = batch.send(requests, lambda start, end: stamps.append(time.time()))
    assert stamps, "the send time is noted before each call"
    return failed, stamps[0]


def test_batched_requests_are_answered_with_kernel_timestamps(icmp4: tuple[Any, bool]) -> None:
    sock, privileged = icmp4
    batch = MmsgSocket.create(sock.sock, 4, slots=16)
    assert batch is not None
    hosts = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(100)]  # 7 calls of at most 16
    failed, sent_at = _send(batch, [(host, _IDENT, seq) for seq, host in enumerate(hosts)])
    assert failed == []
    replies = _read_all(batch, privileged, 100)
    read_at = time.time()
    assert len(replies) == 100
    assert {r.sequence: r.source for r in replies} == dict(enumerate(hosts))
    assert all(r.kind == 0 and r.code == 0 for r in replies)
    if privileged:  # a datagram socket's id is the kernel's
        assert {r.ident for r in replies} == {_IDENT}
    assert all(sent_at <= r.received_at <= read_at for r in replies)


def test_reads_in_slots_and_stops_at_the_limit(icmp4: tuple[Any, bool]) -> None:
    sock, privileged = icmp4
    batch = MmsgSocket.create(sock.sock, 4, slots=4)  # a short buffer: several recvmmsg calls
    assert batch is not None
    failed, _ = _send(batch, [("127.0.0.1", _IDENT, seq) for seq in range(10)])
    assert failed == []

    def waiting() -> bool:
        return len(sock.sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)) > 0

    wait_for(waiting, 5.0, what="a reply waiting")
    wait_for(lambda: len(sock.sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)) > 0, 5.0)
    first, count = batch.read(privileged, 5)
    assert count == 5 and len(first) == 5  # the limit, though more are waiting
    ours = [r for r in first if not privileged or r.ident == _IDENT]
    rest = _read_all(batch, privileged, 10 - len(ours))
    assert sorted(r.sequence for r in ours + rest) == list(range(10))


def test_junk_is_skipped_and_counted(icmp4: tuple[Any, bool]) -> None:
    sock, privileged = icmp4
    if not privileged:
        pytest.skip("needs a raw socket to send a malformed ICMP message")
    batch = MmsgSocket.create(sock.sock, 4)
    assert batch is not None
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        raw.sendto(b"\x03\x01" + bytes(6), ("127.0.0.1", 0))  # an "unreachable" without the request in it
    failed, _ = _send(batch, [("127.0.0.1", _IDENT, 7)])
    assert failed == []
    seen: list[Reply] = []
    counted = 0

    def both() -> bool:  # other processes' pings may come too: they parse, the junk does not
        nonlocal counted
        replies, count = batch.read(True, 512)
        seen.extend(replies)
        counted += count
        return counted > len(seen) and any(r.ident == _IDENT for r in seen)

    wait_for(both, 5.0, what="the junk (read, skipped) and the reply")
    assert [r.sequence for r in seen if r.ident == _IDENT] == [7]


def test_a_failing_request_is_reported_and_the_others_go_out(icmp4: tuple[Any, bool]) -> None:
    sock, privileged = icmp4
    batch = MmsgSocket.create(sock.sock, 4)
    assert batch is not None
    with pytest.raises(OSError) as expected:  # what a plain sendto says for a broadcast
        sock.sock.sendto(b"\x08\x00\x00\x00\x00\x00\x00\x00", ("255.255.255.255", 0))
    requests = [("127.0.0.1", _IDENT, 1), ("255.255.255.255", _IDENT, 2), ("not-an-ip", _IDENT, 3),
                ("127.0.0.2", _IDENT, 4)]
    failed, _ = _send(batch, requests)
    assert [index for index, _ in failed] == [1, 2]
    assert str(failed[0][1]) == str(expected.value)  # the same error text as the per-packet path
    assert {r.sequence for r in _read_all(batch, privileged, 2)} == {1, 4}


class _FlakySendmmsg:
    """Wraps the real sendmmsg: sends at most `at_most` per call, and fails calls with given errnos."""

    def __init__(self, real: Any, at_most: int, errors: list[int]) -> None:
        self.real, self.at_most, self.errors = real, at_most, list(errors)
        self.calls: list[int] = []

    def __call__(self, fd: int, msgs: int, count: int, flags: int) -> int:
        self.calls.append(count)
        if self.errors:
            ctypes.set_errno(self.errors.pop(0))
            return -1
        return int(self.real(fd, msgs, min(count, self.at_most), flags))


def test_partial_sends_and_eagain(icmp4: tuple[Any, bool]) -> None:
    sock, privileged = icmp4
    batch = MmsgSocket.create(sock.sock, 4)
    assert batch is not None
    flaky = _FlakySendmmsg(batch._sendmmsg, 2, [])  # noqa: SLF001
    batch._sendmmsg = flaky  # noqa: SLF001
    failed, _ = _send(batch, [("127.0.0.1", _IDENT, seq) for seq in range(5)])
    assert failed == [] and flaky.calls == [5, 3, 1]  # partial counts: the rest is sent again
    assert len(_read_all(batch, privileged, 5)) == 5
    flaky.errors = [errno.EAGAIN, errno.EINTR]  # a full send buffer: that request fails; EINTR is retried
    failed, _ = _send(batch, [("127.0.0.1", _IDENT, seq) for seq in range(10, 13)])
    assert [(index, error.errno) for index, error in failed] == [(0, errno.EAGAIN)]
    assert {r.sequence for r in _read_all(batch, privileged, 2)} == {11, 12}


def test_enosys_raises_unsupported_with_what_was_not_sent(icmp4: tuple[Any, bool]) -> None:
    sock, _ = icmp4
    batch = MmsgSocket.create(sock.sock, 4)
    assert batch is not None
    batch._sendmmsg = _FlakySendmmsg(batch._sendmmsg, 64, [errno.ENOSYS])  # noqa: SLF001
    with pytest.raises(Unsupported) as raised:
        batch.send([("not-an-ip", _IDENT, 1), ("127.0.0.1", _IDENT, 2)], lambda start, end: None)
    assert raised.value.index == 1 and [index for index, _ in raised.value.failed] == [0]
    assert not batch.usable


def test_unavailable_where_ctypes_cannot_reach_the_calls(monkeypatch: pytest.MonkeyPatch,
                                                         icmp4: tuple[Any, bool]) -> None:
    sock, _ = icmp4
    monkeypatch.setattr(mmsg, "_CALLS", None)  # not Linux, another architecture, no such symbol
    assert MmsgSocket.create(sock.sock, 4) is None
    monkeypatch.setattr(mmsg, "_CALLS", False)  # looked up again: unsupported machine
    monkeypatch.setattr(mmsg.platform, "machine", lambda: "mips")
    assert MmsgSocket.create(sock.sock, 4) is None


def _loopback_probes(prober: Prober, n: int) -> list[Any]:
    sink = ResultSink()
    hosts = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(n)]
    due = time.monotonic() + 0.05  # all in one pass
    for host in hosts:
        prober.submit(host, count=2, timeout_s=1.0, callback=sink, due=due, interval_s=0.02)
    return sink.wait(n, 10.0)


def test_prober_falls_back_to_one_by_one_when_the_calls_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    real_create = MmsgSocket.create

    def create(sock: socket.socket, version: int, slots: int = 64) -> MmsgSocket | None:
        batch = real_create(sock, version, slots)
        assert batch is not None

        def no_call(*args: Any) -> int:
            ctypes.set_errno(errno.ENOSYS)
            return -1

        batch._sendmmsg = batch._recvmmsg = no_call  # noqa: SLF001 - an old kernel / seccomp
        return batch

    monkeypatch.setattr(MmsgSocket, "create", staticmethod(create))
    prober = Prober()
    prober.start()
    try:
        results = _loopback_probes(prober, 50)
        assert all((r.sent, r.received, r.error) == (2, 2, None) for r in results)
        assert prober._batched == {}  # noqa: SLF001 - turned off for good after ENOSYS
    finally:
        prober.stop()


@pytest.mark.parametrize("batched", [True, False], ids=["sendmmsg", "per-packet"])
def test_a_bad_address_in_a_batch_does_not_affect_the_others(batched: bool) -> None:
    prober = Prober(batched=batched)
    prober.start()
    try:
        sink = ResultSink()
        due = time.monotonic() + 0.05
        for host in ("127.0.0.1", "255.255.255.255", "127.0.0.2"):
            prober.submit(host, count=1, timeout_s=1.0, callback=sink, due=due)
        results = {r.address: r for r in sink.wait(3, 5.0)}
        assert bool(prober._batched) is batched  # noqa: SLF001
        bad = results["255.255.255.255"]
        assert (bad.sent, bad.received) == (0, 0) and bad.error is not None
        assert bad.error.startswith("send failed: [Errno 13]")
        assert all((results[h].sent, results[h].received, results[h].error) == (1, 1, None)
                   for h in ("127.0.0.1", "127.0.0.2"))
    finally:
        prober.stop()


def test_ipv6_names_and_sources(icmp4: tuple[Any, bool]) -> None:
    del icmp4
    privileged = detect().privileged
    try:
        sock = open_socket(6, privileged)
    except OSError as err:
        pytest.skip(f"no ICMPv6 socket: {err}")
    try:
        sock.sock.setblocking(False)
        enable_timestamps(sock.sock)
        batch = MmsgSocket.create(sock.sock, 6)
        assert batch is not None
        assert batch._name("::1") == struct.pack("=H", socket.AF_INET6) + bytes(6) + socket.inet_pton(  # noqa: SLF001
            socket.AF_INET6, "::1") + bytes(4)
        failed, _ = _send(batch, [("::1", _IDENT, 9)])
        if failed and failed[0][1].errno in (errno.EADDRNOTAVAIL, errno.ENETUNREACH):
            pytest.skip("IPv6 loopback is disabled")
        assert failed == []
        (reply,) = _read_all(batch, False, 1)
        assert (reply.kind, reply.sequence, reply.source) == (129, 9, "::1")
    finally:
        sock.close()
