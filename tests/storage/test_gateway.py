"""The gateway on its own: never drops, back-pressure, generations, stats."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from fieldwatch.errors import StorageError
from fieldwatch.storage import writes as w
from fieldwatch.storage.gateway import COMMIT_BUCKETS, StorageGateway


def test_submit_never_drops_and_keeps_fifo_order() -> None:
    gateway = StorageGateway(max_queue=10)
    for i in range(50):
        gateway.submit(w.Touch(endpoint_id=1, generation=1, last_data_at=float(i)))
    assert gateway.queue_depth == 50  # past max_queue: still queued
    assert [t.last_data_at for t in gateway.peek(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]  # type: ignore[union-attr]
    gateway.committed(5, 5, 0, 0.002)
    assert gateway.peek(1)[0] == w.Touch(endpoint_id=1, generation=1, last_data_at=5.0)


def test_wait_capacity_blocks_until_the_writer_catches_up() -> None:
    gateway = StorageGateway(max_queue=10)
    gateway.submit_many(w.Touch(endpoint_id=1, generation=1, last_data_at=float(i)) for i in range(12))
    assert gateway.wait_capacity(0.01) is False
    released = threading.Event()

    def producer() -> None:
        if gateway.wait_capacity(5):
            released.set()

    thread = threading.Thread(target=producer)
    thread.start()
    gateway.committed(3, 3, 0, None)  # 9 left: below max_queue
    assert released.wait(5)
    thread.join(5)


def test_stats_histogram_is_cumulative_and_readiness_tracks_failures() -> None:
    gateway = StorageGateway()
    assert not gateway.stats().ready and gateway.stats().reason  # no writer yet
    gateway.submit_many([w.Touch(endpoint_id=1, generation=1, last_data_at=0.0)] * 3)
    gateway.committed(2, 2, 0, 0.004)
    gateway.committed(1, 0, 1, 20.0)
    gateway.failed("OperationalError: database is locked", "storage write failing: locked")
    stats = gateway.stats()
    assert (stats.queue_depth, stats.writes_total, stats.discarded_total, stats.write_errors_total) == (0, 2, 1, 1)
    hist = stats.commit_seconds
    assert hist.bounds == COMMIT_BUCKETS and hist.count == 2 and hist.sum == pytest.approx(20.004)
    assert hist.cumulative[COMMIT_BUCKETS.index(0.005)] == 1 and hist.cumulative[-2] == 1 and hist.cumulative[-1] == 2
    assert not stats.ready and stats.reason == "storage write failing: locked" and "locked" in (stats.last_error or "")
    gateway.set_ready(True)
    assert gateway.stats().ready and gateway.stats().reason is None


def test_command_without_a_writer_fails_fast() -> None:
    with pytest.raises(StorageError):
        StorageGateway().command(object(), timeout_s=0.01)


def test_a_replaced_writer_cannot_remove_its_successors_writes() -> None:
    gateway = StorageGateway()
    old, new = (
        SimpleNamespace(actor_urn="old", tell=lambda m: None),
        SimpleNamespace(actor_urn="new", tell=lambda m: None),
    )
    gateway.attach(old)  # type: ignore[arg-type]
    gateway.submit_many([w.Touch(endpoint_id=1, generation=1, last_data_at=float(i)) for i in range(3)])
    gateway.attach(new)  # type: ignore[arg-type]  # the supervisor replaced a hung writer
    assert gateway.committed(2, 2, 0, 0.01, writer=old) is False  # type: ignore[arg-type]
    assert gateway.queue_depth == 3  # kept: written again by the new writer (at least once)
    gateway.set_ready(True, writer=new)  # type: ignore[arg-type]
    gateway.set_ready(False, "stale news", writer=old)  # type: ignore[arg-type]
    assert gateway.stats().ready
    assert gateway.committed(3, 3, 0, 0.01, writer=new) is True  # type: ignore[arg-type]
    assert gateway.queue_depth == 0
