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
