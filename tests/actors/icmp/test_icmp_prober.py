"""The shared prober against real ICMP on loopback (no mocks)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldwatch.actors.icmp.prober import Prober, ProbeResult
from tests.actors.icmp.icmp_helpers import ResultSink
from tests.waiting import wait_for


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _loopback(n: int) -> list[str]:
    return [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(n)]


def test_loopback_hosts_answer(prober: Prober, sink: ResultSink) -> None:
    addresses = ["127.0.0.1", "127.0.1.2", "127.0.200.3", "127.1.2.3"]
    before = time.time()
    for address in addresses:
        prober.submit(address, count=3, timeout_s=1.0, callback=sink, interval_s=0.05)
    sink.wait(len(addresses), 5.0)
    results = sink.by_address()
    assert sorted(results) == sorted(addresses)
    for result in results.values():
        assert (result.sent, result.received, result.error) == (3, 3, None)
        assert result.ok and result.loss == 0.0 and len(result.rtts) == 3
        assert result.rtt_min is not None and result.rtt_avg is not None
        assert result.rtt_max is not None
        assert 0.0 <= result.rtt_min <= result.rtt_avg <= result.rtt_max < 1.0
        assert before <= result.started_at <= time.time()
        assert 0.0 <= result.lateness_s < 1.0
    assert prober.outstanding_requests == 0


def test_ipv6_loopback_uses_its_own_socket(prober: Prober, sink: ResultSink) -> None:
    if not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("IPv6 is disabled on this machine")
    prober.submit("::1", count=2, timeout_s=1.0, callback=sink, interval_s=0.05)
    prober.submit("127.0.0.1", count=1, timeout_s=1.0, callback=sink)
    results = sink.wait(2, 5.0)
    assert all(r.received == r.sent and r.error is None for r in results)
    assert prober.family_sockets == 2


def test_500_hosts_share_one_socket(prober: Prober, sink: ResultSink) -> None:
    warmup = ResultSink()
    prober.submit("127.0.0.1", count=1, timeout_s=1.0, callback=warmup)  # opens the v4 socket
    warmup.wait(1, 5.0)
    fds_before = _fds()
    hosts = _loopback(500)
    for address in hosts:
        prober.submit(address, count=1, timeout_s=2.0, callback=sink)
    fds_during = _fds()
    results = sink.wait(500, 15.0)
    assert prober.family_sockets == 1
    assert fds_during == fds_before and _fds() == fds_before
    assert {r.address for r in results} == set(hosts)
    assert sum(r.received for r in results) == 500


def test_not_an_ip_address_is_an_error_result(prober: Prober, sink: ResultSink) -> None:
    prober.submit("router.example", count=3, timeout_s=1.0, callback=sink)
    (result,) = sink.wait(1, 5.0)
    assert result.sent == 0 and result.received == 0 and result.loss == 1.0
    assert not result.ok and result.rtt_avg is None
    assert result.error is not None and "not an IP address" in result.error


def test_due_time_is_kept(prober: Prober, sink: ResultSink) -> None:
    due = time.monotonic() + 0.3
    wall_due = time.time() + 0.3
    prober.submit("127.0.0.1", count=1, timeout_s=1.0, callback=sink, due=due)
    (result,) = sink.wait(1, 5.0)
    assert result.started_at >= wall_due - 0.01
    assert result.lateness_s < 0.2
    assert sink.arrived[0] >= due


def test_sequence_wraps_around(prober: Prober, sink: ResultSink) -> None:
    prober._next_seq = 65533  # noqa: SLF001 - start right below the 16-bit wrap
    prober.submit("127.0.0.1", count=6, timeout_s=1.0, callback=sink, interval_s=0.01)
    (result,) = sink.wait(1, 5.0)
    assert (result.sent, result.received) == (6, 6)
    assert prober._next_seq == 3  # noqa: SLF001


def test_callback_exception_is_logged_not_propagated(
    prober: Prober, sink: ResultSink, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(result: ProbeResult) -> None:
        raise RuntimeError("boom")

    prober.submit("127.0.0.1", count=1, timeout_s=1.0, callback=bad)
    prober.submit("127.0.0.2", count=1, timeout_s=1.0, callback=sink)
    sink.wait(1, 5.0)
    wait_for(lambda: "ICMP probe callback failed for 127.0.0.1" in caplog.text, 5.0, what="the callback failure logged")
    prober.submit("127.0.0.3", count=1, timeout_s=1.0, callback=sink)
    assert sink.wait(2, 5.0)[1].ok


def test_invalid_arguments_and_stopped_prober() -> None:
    prober = Prober()
    with pytest.raises(RuntimeError):
        prober.submit("127.0.0.1", count=1, timeout_s=1.0, callback=lambda r: None)
    prober.start()
    try:
        for kwargs in ({"count": 0, "timeout_s": 1.0}, {"count": 1, "timeout_s": 0.0}):
            with pytest.raises(ValueError):
                prober.submit("127.0.0.1", callback=lambda r: None, **kwargs)  # type: ignore[arg-type]
    finally:
        prober.stop()


def test_stop_is_prompt_with_probes_in_flight() -> None:
    prober = Prober()
    prober.start()
    for address in _loopback(50):
        prober.submit(address, count=5, timeout_s=5.0, callback=lambda r: None, interval_s=0.5)
    names = {"fieldwatch-icmp-sender", "fieldwatch-icmp-receiver"}
    assert names <= {t.name for t in threading.enumerate()}
    started = time.monotonic()
    prober.stop()
    assert time.monotonic() - started < 2.0
    assert not names & {t.name for t in threading.enumerate() if t.is_alive()}
    assert prober.family_sockets == 0


def test_reply_waiting_at_the_timeout_counts_though_the_receiver_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver pauses between passes: the sender reads waiting replies before expiring."""
    stalled = threading.Event()

    def receiver_that_never_reads(self: Prober) -> None:
        stalled.wait(5.0)  # a receiver deep in its pause for the whole probe

    monkeypatch.setattr(Prober, "_receive_loop", receiver_that_never_reads)
    prober = Prober()
    prober.start()
    try:
        sink = ResultSink()
        sent = time.monotonic()
        prober.submit("127.0.0.1", count=2, timeout_s=0.3, callback=sink, interval_s=0.05)
        result = sink.wait(1, 5.0)[0]
        assert time.monotonic() - sent >= 0.3  # finished by the timeout, not by the receiver
        assert (result.sent, result.received, result.error) == (2, 2, None)
        assert all(0.0 <= rtt < 0.3 for rtt in result.rtts)  # the kernel's stamps, not the read time
        assert prober.outstanding_requests == 0
    finally:
        stalled.set()
        prober.stop()


def test_without_kernel_timestamps_replies_are_timed_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from fieldwatch.actors.icmp import prober as prober_module

    monkeypatch.setattr(prober_module, "enable_timestamps", lambda sock: False)  # e.g. not Linux
    prober = Prober()
    prober.start()
    try:
        sink = ResultSink()
        before = time.time()
        prober.submit("127.0.0.1", count=2, timeout_s=1.0, callback=sink, interval_s=0.05)
        (result,) = sink.wait(1, 5.0)
        assert (result.sent, result.received, result.error) == (2, 2, None)
        assert all(0.0 <= rtt <= time.time() - before for rtt in result.rtts)
        assert prober._unstamped == {4}  # noqa: SLF001 - the receiver then pauses only _NAP_S
    finally:
        prober.stop()


def test_a_failing_send_does_not_affect_the_others_of_its_pass(prober: Prober, sink: ResultSink) -> None:
    due = time.monotonic() + 0.05  # all three in one pass of the sender
    for host in ("127.0.0.1", "255.255.255.255", "127.0.0.2"):  # a broadcast without SO_BROADCAST: EACCES
        prober.submit(host, count=1, timeout_s=1.0, callback=sink, due=due)
    results = {r.address: r for r in sink.wait(3, 5.0)}
    bad = results["255.255.255.255"]
    assert (bad.sent, bad.received, bad.loss) == (0, 0, 1.0)
    assert bad.error is not None and bad.error.startswith("send failed: [Errno 13]")
    assert all((results[h].sent, results[h].received, results[h].error) == (1, 1, None)
               for h in ("127.0.0.1", "127.0.0.2"))


def test_due_queue_orders_by_time_then_push_order() -> None:
    from fieldwatch.actors.icmp.prober import _DueQueue

    queue = _DueQueue()
    assert queue.earliest() is None and queue.pop_due(1e9) == []
    assert queue.push(5.0, "e")  # the earliest so far
    assert queue.push(2.0, "b")
    assert not queue.push(7.0, "g")
    assert queue.push(2.0, "c")  # the same time: after "b"
    assert queue.push(1.0, "a")
    queue.push(5.0, "f")
    assert len(queue) == 6 and queue.earliest() == 1.0
    assert queue.pop_due(0.5) == []
    assert queue.pop_due(2.0) == [(1.0, "a"), (2.0, "b"), (2.0, "c")]
    assert queue.earliest() == 5.0
    queue.push(3.0, "d")  # pushed late, before what is left
    assert queue.pop_due(6.0) == [(3.0, "d"), (5.0, "e"), (5.0, "f")]
    queue.clear()
    assert len(queue) == 0 and queue.earliest() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("push"), st.floats(0.0, 0.05), st.integers(0, 3)),  # near the clock
    st.tuples(st.just("pop"), st.floats(0.0, 0.03), st.just(0)),
), max_size=60))
def test_due_queue_answers_as_a_sorted_list(ops: list[tuple[str, float, int]]) -> None:
    """Property: the calendar's pops equal a stable sort by due time, at any clock."""
    from fieldwatch.actors.icmp.prober import _DueQueue

    queue, model, now, n = _DueQueue(), [], 100.0, 0
    for op, amount, back in ops:
        if op == "push":
            due = now + amount - back * 0.01  # some already due, some on the same slot, some later
            n += 1
            assert queue.push(due, n) == (not model or due <= min(d for d, _ in model))
            model.append((due, n))
        else:
            now += amount
            due_now = sorted((e for e in model if e[0] <= now), key=lambda e: e[0])
            model = [e for e in model if e[0] > now]
            assert queue.pop_due(now) == due_now
        assert len(queue) == len(model)
        assert queue.earliest() == (min(d for d, _ in model) if model else None)


def test_a_due_time_that_is_not_finite_is_refused(prober: Prober) -> None:
    for due in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            prober.submit("127.0.0.1", count=1, timeout_s=1.0, callback=lambda r: None, due=due)
    with pytest.raises(ValueError):
        prober.schedule("127.0.0.1", count=1, timeout_s=1.0, period_s=1.0, sink=lambda b: None, token=1,
                        phase_s=float("nan"))
    assert len(prober._due) == 0  # noqa: SLF001 - nothing half-scheduled
