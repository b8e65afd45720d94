"""Storage fixtures: one migrated database per test, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import peewee
import pykka
import pytest

from fieldwatch.storage.testing import PG_ENV, pg_url, temporary_database

BACKEND_PARAMS = [
    pytest.param("sqlite"),
    pytest.param(
        "postgresql", marks=pytest.mark.skipif(pg_url() is None, reason=f"{PG_ENV} is not set (no PostgreSQL)")
    ),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test run: sqlite, or postgresql when FIELDWATCH_TEST_PG is set."""
    return str(request.param)


@pytest.fixture
def db(backend: str, tmp_path: Path) -> Iterator[peewee.Database]:
    """A fresh, migrated database bound to the storage proxy."""
    with temporary_database(backend, tmp_path) as database:
        yield database
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
