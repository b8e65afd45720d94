"""Opening databases from URLs."""

from __future__ import annotations

from pathlib import Path

import peewee
import pytest

from fieldwatch.storage.db import open_database


def test_sqlite_url_sets_wal_foreign_keys_busy_timeout(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}?busy_timeout=1234")
    assert isinstance(db, peewee.SqliteDatabase)
    db.connect()
    try:
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 1234
        assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        db.close()


def test_busy_timeout_argument_wins(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=250)
    db.connect()
    try:
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 250
    finally:
        db.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgresql_urls(scheme: str) -> None:
    db = open_database(f"{scheme}://fw:secret@db.example:6543/fieldwatch?sslmode=require", schema="s1")
    assert isinstance(db, peewee.PostgresqlDatabase)
    assert db.database == "fieldwatch"
    params = db.connect_params
    assert params["host"] == "db.example" and params["port"] == 6543 and params["user"] == "fw"
    assert params["sslmode"] == "require"
    assert "search_path=s1" in params["options"]
    assert params["connect_timeout"] > 0  # blocking I/O always has a timeout


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "postgresql://host"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_database(url)
