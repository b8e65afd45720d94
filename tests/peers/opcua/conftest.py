"""Fixtures for the OPC UA peer tests: servers we did not write, a real daemon, and cleanup."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fieldwatch.actors.opcua.loop import OpcuaLoop
from tests.harness import Harness
from tests.peers.opcua.opcua_peers import PeerProcess, node_modules, node_opcua_server, python_opcua_server


@pytest.fixture
def fw(tmp_path: Path) -> Iterator[Harness]:
    """A real daemon (no HTTP) logging at debug to tmp_path/fieldwatch.log, stopped after the test."""
    h = Harness(tmp_path)
    yield h
    h.stop()


@pytest.fixture
def node_server(tmp_path: Path) -> Iterator[Callable[..., PeerProcess]]:
    """Start node-opcua servers (keyword arguments of `node_opcua_server`); all are killed after the test."""
    modules = node_modules()
    if modules is None:
        reason = "node or node-opcua not installed (scripts/test.sh installs them into .node/)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    started: list[PeerProcess] = []

    def make(**kwargs: object) -> PeerProcess:
        folder = tmp_path / f"node-opcua-{len(started)}"
        folder.mkdir()
        server = node_opcua_server(folder, modules, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def python_server(tmp_path: Path) -> Iterator[Callable[..., PeerProcess]]:
    """Start python-opcua servers (optionally on a given port); all are killed after the test."""
    if importlib.util.find_spec("opcua") is None:
        reason = "python-opcua (the `opcua` package, a test extra) is not installed"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    started: list[PeerProcess] = []

    def make(port: int | None = None) -> PeerProcess:
        server = python_opcua_server(tmp_path, port)
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture(scope="session", autouse=True)
def _stop_opcua_loop() -> Iterator[None]:
    yield
    OpcuaLoop.shared().stop()
