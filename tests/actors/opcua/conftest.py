"""Fixtures: the OPC UA simulation server in a subprocess that tests can stop, start, freeze and thaw."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fieldwatch.actors.opcua.loop import OpcuaLoop
from tests.actors.opcua.opcua_sim import SimProcess


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimProcess]]:
    """Start simulation servers with the given CLI arguments; all are killed after the test."""
    started: list[SimProcess] = []

    def make(*args: str, port: int | None = None) -> SimProcess:
        server = SimProcess(*args, port=port)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[SimProcess]:
    """One lenient server for tests that do not disturb it."""
    server = SimProcess()
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session", autouse=True)
def _stop_opcua_loop() -> Iterator[None]:
    yield
    OpcuaLoop.shared().stop()
