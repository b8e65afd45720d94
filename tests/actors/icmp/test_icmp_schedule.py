"""Recurring probes owned by the prober, and the hub that applies steady results (issue 17).

The schedule tests use real ICMP on loopback. The hub tests are unit tests of its
decision logic: a real EndpointLedger and StorageGateway (no writer attached: submits
stay queued where the test reads them) and a recording stand-in for the actor's ref.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fieldwatch.actors.icmp.hub import IcmpHub, ProbeDone, ProbeSlot
from fieldwatch.actors.icmp.prober import Prober, ProbeResult
from fieldwatch.actors.icmp.stats import RttStats
from fieldwatch.ledger import EndpointLedger
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.writes import ReadingRecord, Touch
from tests.waiting import wait_for


class _Batches:
    """A BatchSink that records every call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[list[tuple[Any, ProbeResult]]] = []

    def __call__(self, batch: list[tuple[Any, ProbeResult]]) -> None:
        with self.lock:
            self.calls.append(list(batch))

    def results(self, token: Any) -> list[ProbeResult]:
        with self.lock:
            return [r for call in self.calls for t, r in call if t == token]


def test_schedule_probes_now_then_every_period_on_its_phase(prober: Prober) -> None:
    sink = _Batches()
    started = time.time()
    handle = prober.schedule("127.0.0.1", count=1, timeout_s=0.5, period_s=0.3, sink=sink, token="a", phase_s=0.1)
    wait_for(lambda: len(sink.results("a")) >= 4, 5.0, what="four scheduled probes")
    handle.cancel()
    times = [r.started_at for r in sink.results("a")]
    assert times[0] - started < 0.2  # the first probe at once
    assert 0.05 < times[1] - times[0] < 0.25  # then the phase
    assert all(0.2 < b - a < 0.4 for a, b in zip(times[1:], times[2:], strict=False))  # then the period
    assert all(r.ok and r.error is None and r.lateness_s < 0.25 for r in sink.results("a"))
    count = len(sink.results("a"))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # cancelled: no probe starts any more (one may be in flight)
        time.sleep(0.05)
    assert len(sink.results("a")) <= count + 1
    assert prober.outstanding_requests == 0


def test_many_schedules_are_delivered_in_batches(prober: Prober) -> None:
    sink = _Batches()
    hosts = [f"127.0.{i // 250}.{1 + i % 250}" for i in range(300)]
    handles = [prober.schedule(h, count=1, timeout_s=1.0, period_s=5.0, sink=sink, token=h) for h in hosts]
    wait_for(lambda: sum(len(c) for c in sink.calls) >= len(hosts), 10.0, what="a result per host")
    for handle in handles:
        handle.cancel()
    assert {t for call in sink.calls for t, _ in call} == set(hosts)
    assert all(r.ok for call in sink.calls for _, r in call)
    assert len(sink.calls) < len(hosts)  # batched: fewer sink calls than results


def test_not_an_ip_address_schedule_ends_in_error_results(prober: Prober) -> None:
    sink = _Batches()
    handle = prober.schedule("router.example", count=1, timeout_s=0.2, period_s=0.2, sink=sink, token=1)
    wait_for(lambda: len(sink.results(1)) >= 2, 5.0, what="two error results")
    handle.cancel()
    assert all(not r.ok and r.error and "not an IP address" in r.error for r in sink.results(1))


# -- the hub ---------------------------------------------------------------------------------


class _Ref:
    """Records what the hub tells the actor."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


def _result(ok: bool, at: float) -> ProbeResult:
    return ProbeResult("127.0.0.1", 1, 1 if ok else 0, (0.002,) if ok else (), at, 0.0, None if ok else "timeout")


@pytest.fixture
def board() -> EndpointLedger:
    b = EndpointLedger(StorageGateway())  # its own gateway: the tests read the hub's writes from theirs
    b.register(7, site="s", name="e", kind="icmp", enabled=True, generation=2)
    b.begin(7).transition("up")  # generation 3
    return b


def _slot(board: EndpointLedger, storage: StorageGateway, ref: _Ref, generation: int = 3) -> ProbeSlot:
    return ProbeSlot(7, generation, 1, ref, board, storage)  # type: ignore[arg-type]


def _queued(storage: StorageGateway) -> list[Any]:
    return list(storage._pending)  # noqa: SLF001 - no writer attached: what was submitted


def test_steady_answer_is_applied_without_a_message(board: EndpointLedger) -> None:
    storage, ref, hub = StorageGateway(), _Ref(), IcmpHub()
    slot = _slot(board, storage, ref)
    slot.steady = True
    hub.deliver([(slot, _result(True, 1000.0))])
    assert ref.told == []
    status = board.get(7)
    assert status is not None and status.last_data_at == 1000.0 and isinstance(status.extra, RttStats)
    assert status.extra.count == 1 and status.extra.packet_loss == 0.0
    assert status.extra.buckets[2] == 1  # 2 ms: the 2.5 ms bucket
    assert status.extra.last_rtt == 0.002  # the page's RTT column follows the hub's answers too
    rows = _queued(storage)
    probe_rows = [r for r in rows if isinstance(r, ReadingRecord)]  # one row per probe: rtt with its loss
    assert [(r.name, r.value_num, r.aux_name, r.aux_num) for r in probe_rows] == [("rtt", 0.002, "packet_loss", 0.0)]
    assert [r.last_data_at for r in rows if isinstance(r, Touch)] == [1000.0]


def test_failure_goes_to_the_actor_and_later_answers_follow_it_in_order(board: EndpointLedger) -> None:
    storage, ref, hub = StorageGateway(), _Ref(), IcmpHub()
    slot = _slot(board, storage, ref)
    slot.steady = True
    hub.deliver([(slot, _result(False, 1000.0))])
    # The actor has not handled the failure yet: an answer now must not overtake it.
    hub.deliver([(slot, _result(True, 1010.0))])
    assert [type(m) for m in ref.told] == [ProbeDone, ProbeDone]
    assert [m.result.ok for m in ref.told] == [False, True]
    assert not slot.steady and slot.told == 2
    status = board.get(7)
    assert status is not None and status.last_data_at is None and _queued(storage) == []
    # The actor handled both and is steady again: the next answer is applied by the hub.
    slot.steady, slot.handled = True, 2
    hub.deliver([(slot, _result(True, 1020.0))])
    assert len(ref.told) == 2
    status = board.get(7)
    assert status is not None and status.last_data_at == 1020.0


def test_not_steady_answers_go_to_the_actor(board: EndpointLedger) -> None:
    storage, ref, hub = StorageGateway(), _Ref(), IcmpHub()
    slot = _slot(board, storage, ref)  # steady is False: e.g. down, counting up_after
    hub.deliver([(slot, _result(True, 1000.0))])
    assert len(ref.told) == 1 and _queued(storage) == []


def test_newer_run_cancels_older_and_older_generation_is_refused(board: EndpointLedger) -> None:
    storage, hub = StorageGateway(), IcmpHub()
    old = _slot(board, storage, _Ref(), generation=3)
    new = _slot(board, storage, _Ref(), generation=4)
    hub.register(old)
    hub.register(new)  # the replacement of a hung actor
    assert old.cancelled and not new.cancelled
    assert board.begin(7, 1).generation == 4
    stale = _slot(board, storage, _Ref(), generation=3)
    stale.steady = True
    hub.deliver([(stale, _result(True, 1000.0))])
    status = board.get(7)
    assert status is not None and status.last_data_at is None  # refused by the ledger
    assert stale.cancelled


def test_applied_rows_reach_storage_within_the_flush_delay_and_before_a_told_result(board: EndpointLedger) -> None:
    from fieldwatch.actors.icmp.hub import FLUSH_S
    from fieldwatch.actors.scheduler import Scheduler

    scheduler = Scheduler("test-hub-flush")
    scheduler.start()
    try:
        storage, ref, hub = StorageGateway(), _Ref(), IcmpHub()
        slot = ProbeSlot(7, 3, 1, ref, board, storage, scheduler)  # type: ignore[arg-type]
        slot.steady = True
        hub.deliver([(slot, _result(True, 1000.0))])
        applied_at = time.monotonic()
        assert _queued(storage) == []  # buffered for one writer wake-up per FLUSH_S
        wait_for(lambda: _queued(storage), 5.0, what="the buffered rows handed to storage")
        assert time.monotonic() - applied_at >= FLUSH_S * 0.5
        assert len(_queued(storage)) == 2  # the probe's row (rtt with packet_loss), Touch

        hub.deliver([(slot, _result(True, 1010.0))])
        hub.deliver([(slot, _result(False, 1020.0))])  # told to the actor: what came before goes first
        assert len(_queued(storage)) == 3 and len(ref.told) == 1  # + the next probe's row (Touch: a minute later)

        slot.steady, slot.handled = True, 1
        hub.deliver([(slot, _result(True, 1030.0))])
        hub.unregister(slot)  # the run ends: its rows are not left behind
        assert len(_queued(storage)) == 4  # one more probe row (its Touch: a minute after the first)
    finally:
        scheduler.stop()


def test_rows_are_not_stranded_when_the_flush_timer_is_lost(board: EndpointLedger) -> None:
    from fieldwatch.actors.icmp.hub import FLUSH_S
    from fieldwatch.actors.scheduler import Scheduler

    scheduler = Scheduler("test-hub-lost-timer")  # never started: its timers never fire
    storage, ref, hub = StorageGateway(), _Ref(), IcmpHub()
    slot = ProbeSlot(7, 3, 1, ref, board, storage, scheduler)  # type: ignore[arg-type]
    slot.steady = True
    hub.deliver([(slot, _result(True, 1000.0))])
    assert _queued(storage) == []
    deadline = time.monotonic() + 2 * FLUSH_S + 0.01
    while time.monotonic() < deadline:  # let the lost timer's due time pass (nothing to poll for)
        time.sleep(0.01)
    hub.deliver([(slot, _result(True, 1010.0))])  # the next delivery hands everything over
    assert len(_queued(storage)) == 3  # two probes' rows and the first one's Touch (the next: a minute later)


@pytest.mark.parametrize(
    ("clustered", "expected"),
    [(False, [1000.0, 1060.0]), (True, [1000.0, 1010.0, 1020.0, 1030.0, 1040.0, 1050.0, 1060.0])],
)
def test_the_stored_last_data_at_is_refreshed_every_second_in_a_cluster_every_minute_alone(
    board: EndpointLedger, clustered: bool, expected: list[float]
) -> None:
    storage, ref, hub = StorageGateway(), _Ref(), IcmpHub()
    if clustered:
        storage.fence = object()  # type: ignore[assignment]  # other instances mirror the endpoint rows
    slot = _slot(board, storage, ref)
    slot.steady = True
    for k in range(7):  # a probe every 10 s, each answered
        hub.deliver([(slot, _result(True, 1000.0 + 10 * k))])
    status = board.get(7)
    assert status is not None and status.last_data_at == 1060.0  # the ledger (API, page) has every one
    assert [r.last_data_at for r in _queued(storage) if isinstance(r, Touch)] == expected
    assert len([r for r in _queued(storage) if isinstance(r, ReadingRecord)]) == 7  # every probe stored
