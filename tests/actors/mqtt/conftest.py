"""Fixtures: private Mosquitto brokers (killable, freezable) on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Harness
from tests.mosquitto import MosquittoBroker, mosquitto_binary


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Start Mosquitto brokers with MosquittoBroker options; all are killed after the test."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    started: list[MosquittoBroker] = []

    def make(**options: Any) -> MosquittoBroker:
        broker = MosquittoBroker(workdir=tmp_path / f"broker{len(started)}", **options)
        started.append(broker)
        return broker.start()

    yield make
    for broker in started:
        broker.kill()


@pytest.fixture
def broker(broker_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A fresh broker with unlimited queues and in-flight window, persistence on."""
    return broker_factory()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A real daemon (no HTTP), stopped after the test."""
    h = Harness(tmp_path)
    yield h
    h.stop()
