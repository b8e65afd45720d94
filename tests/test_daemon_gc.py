"""The daemon sets the cyclic collector's thresholds once started (issue 17: CPU per probe)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.daemon import GC_THRESHOLDS
from tests.harness import Harness


@pytest.fixture
def defaults() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    yield
    gc.set_threshold(*before)


def test_a_started_daemon_runs_young_collections_less_often(tmp_path: Any, defaults: None) -> None:
    assert gc.get_threshold() != GC_THRESHOLDS
    h = Harness(tmp_path)
    try:
        h.start([])
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700  # fewer young passes, each promoting the writes in flight
    finally:
        h.stop()


def test_the_endpoints_objects_are_frozen_once_none_is_connecting(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects built as endpoints connect are kept out of the collector's full passes, once the
    fleet has started: not while one is still connecting, then once."""
    import fieldwatch.daemon as daemon_module
    from fieldwatch.actors.icmp.schema import IcmpOptions
    from fieldwatch.config.model import EndpointConfig, SiteConfig
    from fieldwatch.ledger import EndpointLedger
    from tests.waiting import wait_for

    monkeypatch.setattr(daemon_module, "SETTLE_CHECK_S", 0.05)
    connecting = EndpointLedger.connecting
    held = [True]  # the test's stand-in for an endpoint that has not connected yet
    looked: list[int] = []

    def still_connecting(self: EndpointLedger) -> int:
        looked.append(1)
        return 1 if held[0] else connecting(self)

    monkeypatch.setattr(EndpointLedger, "connecting", still_connecting)
    freezes: list[int] = []
    freeze = gc.freeze

    def counted_freeze() -> None:
        freezes.append(1)
        freeze()

    monkeypatch.setattr(gc, "freeze", counted_freeze)
    h = Harness(tmp_path)
    try:
        eps = tuple(EndpointConfig(f"e{i}", "icmp", IcmpOptions("127.0.0.1", interval_s=1.0)) for i in range(3))
        h.start([SiteConfig("s", endpoints=eps)])
        assert len(freezes) == 1  # at start: what start built
        for i in range(3):
            h.wait_state("s", f"e{i}", "up", 10)
        wait_for(lambda: len(looked) >= 5, 5, what="the settle check to look a few times")
        assert len(freezes) == 1  # one still connecting: not yet
        held[0] = False
        wait_for(lambda: len(freezes) == 2, 5, what="the endpoints' objects frozen")
        calls = len(looked)
        wait_for(lambda: h.daemon is not None and h.daemon._settle_timer is None, 5, what="the check to stop")  # noqa: SLF001
        assert len(looked) <= calls + 1 and len(freezes) == 2  # once: the check does not run again
    finally:
        h.stop()
