"""Fixtures for cluster tests: a private PostgreSQL schema per test, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from fieldwatch.storage.testing import PG_ENV, pg_url


@pytest.fixture()
def pg_schema() -> Iterator[tuple[str, str]]:
    """(dsn, schema): a fresh `fw_ha_<random>` schema on FIELDWATCH_TEST_PG, dropped at teardown."""
    dsn = pg_url()
    if dsn is None:
        pytest.skip(f"{PG_ENV} is not set: cluster tests need PostgreSQL")
    schema = f"fw_ha_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    try:
        yield dsn, schema
    finally:
        with admin.cursor() as cur:
            # Leftover connections of this test (named after the schema) would block the DROP.
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
                        (f"%{schema}%",))
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
