"""Fixtures for the HTTP API tests: the app over fakes, driven in-process or through waitress."""

from __future__ import annotations

import os
from collections.abc import Iterator

import falcon.testing
import pytest

from fieldwatch.http import AppDeps, HttpServer, create_app, serve
from tests.httpapi.httpapi_fakes import TOKEN, make_deps


@pytest.fixture
def log_file(tmp_path: object) -> str:
    """A daemon log path in the test's temporary directory (not created)."""
    return os.path.join(str(tmp_path), "fieldwatch.log")


@pytest.fixture
def deps(log_file: str) -> AppDeps:
    """Fresh collaborators for one test."""
    return make_deps(log_file=log_file)


@pytest.fixture
def client(deps: AppDeps) -> falcon.testing.TestClient:
    """An in-process client of the app."""
    return falcon.testing.TestClient(create_app(deps))


@pytest.fixture
def auth() -> dict[str, str]:
    """The Authorization header mutating routes need."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(deps: AppDeps) -> Iterator[HttpServer]:
    """The app behind a real waitress on a free port, stopped after the test."""
    running = serve(create_app(deps), "127.0.0.1:0", threads=4)
    yield running
    running.stop()
