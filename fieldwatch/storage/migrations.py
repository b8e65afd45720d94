"""Explicit schema migrations: a schema_version table and one function per version.

A migration only ever moves forward (never drop-and-recreate). A plain one runs in
one transaction; a staged one (`Staged`: a populated table to convert) runs `prepare`,
then `step` in as many transactions as it takes, then `finish`, and resumes where it
stopped if interrupted. On PostgreSQL an advisory lock, taken in every one of those
transactions, keeps two instances from migrating at once. To change the schema, append
to `MIGRATIONS` and never edit old entries.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import peewee

from fieldwatch.cluster.schema import CLUSTER_DDL
from fieldwatch.errors import StorageError
from fieldwatch.storage.db import is_sqlite, write_transaction
from fieldwatch.storage.migrate_v2 import READING_VIEW, SchemaV2
from fieldwatch.storage.recent import RAW_COLUMNS, RECENT
from fieldwatch.storage.rollup_state import ALL_COMPLETE
from fieldwatch.storage.rollups import TIERS

__all__ = ["MIGRATIONS", "LATEST_VERSION", "migrate", "schema_version"]

logger = logging.getLogger(__name__)

_ADVISORY_LOCK_KEY = 0x6669656C64  # "field"

_SQLITE_TYPES = {
    "pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "bigpk": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "fastpk": "INTEGER PRIMARY KEY",
    "bigint": "INTEGER",
    "float": "REAL",
    "bool": "INTEGER",
    "true": "1",
    "false": "0",
    "norowid": " WITHOUT ROWID",
}
_PG_TYPES = {
    "pk": "SERIAL PRIMARY KEY",
    "bigpk": "BIGSERIAL PRIMARY KEY",
    "fastpk": "BIGSERIAL PRIMARY KEY",
    "bigint": "BIGINT",
    "float": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "true": "TRUE",
    "false": "FALSE",
    "norowid": "",
}


def _ddl(db: peewee.Database, statements: tuple[str, ...]) -> None:
    types = _SQLITE_TYPES if is_sqlite(db) else _PG_TYPES
    for statement in statements:
        db.execute_sql(statement.format(**types))


_V1 = (
    """CREATE TABLE site (
        id {pk},
        name TEXT NOT NULL UNIQUE,
        enabled {bool} NOT NULL,
        origin TEXT NOT NULL,
        config TEXT NOT NULL DEFAULT '{{}}',
        created_at {float} NOT NULL,
        updated_at {float} NOT NULL)""",
    """CREATE TABLE endpoint (
        id {pk},
        site_id INTEGER NOT NULL REFERENCES site (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        enabled {bool} NOT NULL,
        origin TEXT NOT NULL,
        config TEXT NOT NULL DEFAULT '{{}}',
        state TEXT NOT NULL DEFAULT 'disabled',
        since {float},
        reason TEXT,
        down_since {float},
        last_data_at {float},
        generation INTEGER NOT NULL DEFAULT 0,
        restarts INTEGER NOT NULL DEFAULT 0,
        reconnects INTEGER NOT NULL DEFAULT 0,
        updated_at {float} NOT NULL,
        UNIQUE (site_id, name))""",
    # AUTOINCREMENT on SQLite: ids are never reused, so `after_id` follow mode is safe.
    """CREATE TABLE event (
        id {bigpk},
        time {float} NOT NULL,
        site_name TEXT,
        endpoint_name TEXT,
        endpoint_id INTEGER REFERENCES endpoint (id) ON DELETE SET NULL,
        level TEXT NOT NULL,
        event TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        exc_type TEXT,
        attempt INTEGER,
        generation INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX event_time ON event (time)",
    "CREATE INDEX event_endpoint_time ON event (endpoint_id, time)",
    "CREATE INDEX event_site_time ON event (site_name, time)",
    """CREATE TABLE reading (
        id {fastpk},
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        device TEXT,
        value_num {float},
        value_text TEXT,
        quality TEXT NOT NULL,
        source_time {float},
        received_at {float} NOT NULL,
        msg_key TEXT)""",
    "CREATE INDEX reading_endpoint_name_received ON reading (endpoint_id, name, received_at)",
    "CREATE INDEX reading_received ON reading (received_at)",
    "CREATE UNIQUE INDEX reading_msg_key ON reading (endpoint_id, msg_key) WHERE msg_key IS NOT NULL",
    """CREATE TABLE alert (
        id {pk},
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        condition TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        triggered_at {float} NOT NULL,
        resolved_at {float})""",
    "CREATE UNIQUE INDEX alert_active ON alert (endpoint_id, condition, subject) WHERE resolved_at IS NULL",
    "CREATE INDEX alert_resolved ON alert (resolved_at)",
    "CREATE INDEX alert_endpoint ON alert (endpoint_id, triggered_at)",
    "CREATE INDEX alert_triggered ON alert (triggered_at)",
    """CREATE TABLE topic (
        id {pk},
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        topic TEXT NOT NULL,
        first_seen {float} NOT NULL,
        last_seen {float} NOT NULL,
        count {bigint} NOT NULL DEFAULT 0,
        is_processable {bool} NOT NULL,
        is_active {bool} NOT NULL DEFAULT {true},
        UNIQUE (endpoint_id, topic))""",
    """CREATE TABLE parse_error (
        id {bigpk},
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        time {float} NOT NULL,
        topic TEXT,
        parser TEXT NOT NULL,
        error TEXT NOT NULL,
        sample TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX parse_error_endpoint_time ON parse_error (endpoint_id, time)",
    "CREATE INDEX parse_error_time ON parse_error (time)",
    """CREATE TABLE device (
        id {pk},
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        first_seen {float} NOT NULL,
        last_seen {float} NOT NULL,
        online {bool} NOT NULL,
        UNIQUE (endpoint_id, name))""",
)


def _v1(db: peewee.Database) -> None:
    """Version 1: every table of SPEC §3-§6 and the indexes the API's queries use."""
    _ddl(db, _V1)


class Staged(Protocol):
    """A migration of populated tables, done in chunks (see the module doc)."""

    def prepared(self, db: peewee.Database) -> bool: ...

    def prepare(self, db: peewee.Database, ddl: Callable[[peewee.Database, tuple[str, ...]], None]) -> None: ...

    def step(self, db: peewee.Database) -> bool: ...

    def finish(self, db: peewee.Database) -> None: ...

    def reset(self) -> None: ...


_V3_DECLARATION = (
    """CREATE TABLE site_declaration (
        site_id INTEGER NOT NULL REFERENCES site (id) ON DELETE CASCADE,
        instance TEXT NOT NULL,
        declared_at {float} NOT NULL,
        PRIMARY KEY (site_id, instance))""",
    "CREATE INDEX site_declaration_instance ON site_declaration (instance)",
)


def _v3(db: peewee.Database) -> None:
    """Version 3, high availability (SPEC section 10): which instance's config declares each
    site (both backends; see storage/sites.py SyncConfig) and, on PostgreSQL only, the
    cluster's instance and lease tables (fieldwatch/cluster/schema.py)."""
    _ddl(db, _V3_DECLARATION)
    if not is_sqlite(db):
        db.execute_sql(CLUSTER_DDL)


def _v4(db: peewee.Database) -> None:
    """Version 4, fencing (SPEC section 10): the lease epoch of an endpoint row's last writer.
    Set by the writer of a cluster only, whose UPDATEs never lower it (NULL: never written
    under a lease, e.g. a single instance), so status rows never go backwards in epoch."""
    _ddl(db, ("ALTER TABLE endpoint ADD COLUMN lease_epoch {bigint}",))


def _v5(db: peewee.Database) -> None:
    """Version 5, rollups kept open in memory by a single writer (storage/rollup_state.py): per
    tier the mark before which every bucket is complete in its table. Created ALL_COMPLETE
    (what the writers so far stored: every bucket upserted per transaction); a single
    writer lowers the marks when it starts."""
    _ddl(db, ("CREATE TABLE rollup_mark (tier TEXT PRIMARY KEY, complete_before {bigint} NOT NULL)",))
    for tier in TIERS:
        db.execute_sql(
            f"INSERT INTO rollup_mark (tier, complete_before) VALUES ({db.param}, {db.param})",
            (tier.table, ALL_COMPLETE),
        )


def _v6(db: peewee.Database) -> None:
    """Version 6, new raw rows staged on SQLite (storage/raw.py, storage/recent.py): the table
    `reading_recent` (no key, no index: a commit's rows land at its end) and the `reading`
    view over both tables. Created on PostgreSQL too (empty there: its writer inserts into
    reading_raw), so both schemas have the same tables."""
    # the columns of reading_raw, without its key (SQLite takes each column's declared type)
    db.execute_sql(f"CREATE TABLE {RECENT} AS SELECT {RAW_COLUMNS} FROM reading_raw WHERE 1 = 0")
    if is_sqlite(db):  # the `reading` view (v1 columns) over reading_raw and the staged rows
        both = f"(SELECT {RAW_COLUMNS} FROM reading_raw UNION ALL SELECT {RAW_COLUMNS} FROM {RECENT})"
        assert READING_VIEW.count("FROM reading_raw r ") == 2
        db.execute_sql("DROP VIEW IF EXISTS reading")
        db.execute_sql(READING_VIEW.replace("FROM reading_raw r ", f"FROM {both} r "))


#: Migration n (1-based) is MIGRATIONS[n - 1]. Append only.
MIGRATIONS: tuple[Callable[[peewee.Database], None] | Staged, ...] = (_v1, SchemaV2(), _v3, _v4, _v5, _v6)
LATEST_VERSION = len(MIGRATIONS)


def _ensure_version_table(db: peewee.Database) -> None:
    types = _SQLITE_TYPES if is_sqlite(db) else _PG_TYPES
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at {float} NOT NULL)".format(
            **types
        )
    )


def schema_version(db: peewee.Database) -> int:
    """The version the database is at (0 for an empty database)."""
    if "schema_version" not in db.get_tables():
        return 0
    row = db.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(db: peewee.Database, target: int = LATEST_VERSION) -> int:
    """Bring the schema to `target` (default: the latest), version by version; return the version.

    Idempotent: an up-to-date database is left alone. A database newer than this code
    is refused with StorageError rather than touched.
    """
    try:
        with write_transaction(db):
            _ensure_version_table(db)
        for version, migration in enumerate(MIGRATIONS[:target], start=1):
            if not callable(migration):
                _staged(db, version, migration)
                continue
            with _locked(db):
                if not _due(db, version):
                    continue
                logger.info("migrating storage schema to version %d", version)
                assert callable(migration)
                migration(db)
                _record(db, version)
        return schema_version(db)
    except peewee.DatabaseError as err:
        raise StorageError(f"schema migration failed: {err}") from err


@contextlib.contextmanager
def _locked(db: peewee.Database) -> Iterator[None]:
    """A write transaction holding the migration lock (PostgreSQL: an advisory lock)."""
    with write_transaction(db):
        if not is_sqlite(db):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
        yield


def _due(db: peewee.Database, version: int) -> bool:
    """Whether `version` still has to run (StorageError for a schema newer than this code)."""
    current = schema_version(db)
    if current > LATEST_VERSION:
        raise StorageError(
            f"database schema is version {current}, newer than this fieldwatch "
            f"(version {LATEST_VERSION}); upgrade fieldwatch"
        )
    return version > current


def _record(db: peewee.Database, version: int) -> None:
    db.execute_sql(
        f"INSERT INTO schema_version (version, applied_at) VALUES ({db.param}, {db.param})",
        (version, time.time()),
    )


def _staged(db: peewee.Database, version: int, migration: Staged) -> None:
    """Run a staged migration: prepare once, step until done, finish (each locked)."""
    with _locked(db):
        if not _due(db, version):
            return
        if not migration.prepared(db):
            logger.info("migrating storage schema to version %d", version)
            migration.prepare(db, _ddl)
        else:
            logger.info("resuming the interrupted migration to schema version %d", version)
    started = time.monotonic()
    done = False
    migration.reset()
    try:
        while not done:
            with _locked(db):
                done = migration.step(db)
    except BaseException:
        migration.reset()  # what it cached of a rolled-back chunk is not in the database
        raise
    with _locked(db):
        if _due(db, version):
            migration.finish(db)
            _record(db, version)
    logger.info("storage schema is at version %d (%.1f s)", version, time.monotonic() - started)
