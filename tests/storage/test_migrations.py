"""Schema migrations: from empty, idempotent, never touching a newer schema."""

from __future__ import annotations

from pathlib import Path

import peewee
import pytest

from fieldwatch.errors import StorageError
from fieldwatch.storage.migrations import LATEST_VERSION, migrate, schema_version
from fieldwatch.storage.models import ALL_MODELS
from fieldwatch.storage.testing import temporary_database

TABLES = {
    "site", "endpoint", "event", "series", "reading_raw", "reading_key", "rollup_1m", "rollup_1h",
    "alert", "topic", "parse_error", "device", "schema_version",
}


def test_migrate_from_empty_creates_every_table(backend: str, tmp_path: Path) -> None:
    with temporary_database(backend, tmp_path, migrated=False) as db:
        assert schema_version(db) == 0
        assert migrate(db) == LATEST_VERSION
        assert TABLES <= set(db.get_tables())
        assert "reading" in {v.name for v in db.get_views()}  # the v1 columns, for tools and SQL
        for model in ALL_MODELS:  # the models match the DDL: every declared column exists
            columns = {c.name for c in db.get_columns(model._meta.table_name)}
            assert {f.column_name for f in model._meta.sorted_fields} <= columns, model


def test_migrate_is_idempotent_and_keeps_data(db: peewee.Database) -> None:
    db.execute_sql(
        f"INSERT INTO site (name, enabled, origin, config, created_at, updated_at) "
        f"VALUES ({db.param}, {db.param}, 'api', '{{}}', 0, 0)",
        ("keep-me", True),
    )
    assert migrate(db) == LATEST_VERSION
    assert migrate(db) == LATEST_VERSION
    rows = db.execute_sql("SELECT version FROM schema_version").fetchall()
    assert [r[0] for r in rows] == list(range(1, LATEST_VERSION + 1))
    assert db.execute_sql("SELECT name FROM site").fetchall() == [("keep-me",)]


def test_a_newer_schema_is_refused(db: peewee.Database) -> None:
    db.execute_sql(f"INSERT INTO schema_version (version, applied_at) VALUES ({db.param}, 0)", (LATEST_VERSION + 1,))
    with pytest.raises(StorageError, match="newer"):
        migrate(db)
