"""Test helpers: a throw-away migrated database on SQLite or PostgreSQL.

The same suites run on both backends: SQLite always, PostgreSQL when the environment
variable FIELDWATCH_TEST_PG names a server (each test gets its own schema, dropped after).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee

from fieldwatch.storage.db import close_database, init_database, open_database
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.migrations import migrate
from fieldwatch.storage.writes import GenerationStarted

__all__ = ["PG_ENV", "BACKENDS", "pg_url", "start_generation", "temporary_database"]

_generations = itertools.count(1)


def start_generation(gateway: StorageGateway, endpoint_id: int) -> int:
    """A new generation for writes of the endpoint, stored as `EndpointLedger.begin` stores one.

    For storage tests without a ledger: one counter for every endpoint (newer is higher).
    """
    generation = next(_generations)
    gateway.submit(GenerationStarted(endpoint_id=endpoint_id, generation=generation))
    return generation


#: The environment variable naming the PostgreSQL server tests may use.
PG_ENV = "FIELDWATCH_TEST_PG"

BACKENDS = ("sqlite", "postgresql")


def pg_url() -> str | None:
    """The PostgreSQL URL for tests, or None when PostgreSQL tests are off."""
    return os.environ.get(PG_ENV) or None


@contextlib.contextmanager
def temporary_database(
    backend: str, directory: Path, *, migrated: bool = True, **kwargs: Any
) -> Iterator[peewee.Database]:
    """Bind the storage proxy to a fresh database for one test and clean it up after.

    SQLite: a file in `directory`. PostgreSQL: a new schema on FIELDWATCH_TEST_PG
    (search_path set on every connection; the schema is dropped afterwards).
    The database's `url` and `schema` are stored as attributes for subprocess tests.
    """
    schema: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'fieldwatch-test.db'}"
        db = open_database(url, **kwargs)
    elif backend == "postgresql":
        base = pg_url()
        if base is None:
            raise RuntimeError(f"{PG_ENV} is not set")
        url = base
        schema = f"fwtest_{uuid.uuid4().hex[:12]}"
        admin = open_database(base)
        admin.connect()
        admin.execute_sql(f"CREATE SCHEMA {schema}")
        admin.close()
        kwargs.setdefault("application_name", schema)
        db = open_database(base, schema=schema, **kwargs)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    db.fieldwatch_url = url  # type: ignore[attr-defined]
    db.fieldwatch_schema = schema  # type: ignore[attr-defined]
    init_database(db)
    try:
        if migrated:
            migrate(db)
        yield db
    finally:
        close_database()
        if schema is not None:
            admin = open_database(url)
            admin.connect()
            admin.execute_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (schema,),
            )
            admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.close()
