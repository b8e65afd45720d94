"""Opening the database from a URL, and the one DatabaseProxy every model is bound to.

`sqlite:///path` (the default; WAL, foreign keys, a busy timeout, synchronous=NORMAL)
or `postgresql://user@host/db` (also `postgres://`). Peewee keeps one connection
per thread, so the writer actor, the retention actor and each HTTP thread each
have their own.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from typing import Any, cast
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse as parse_url

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DATABASE_ERRORS",
    "ROW_ERRORS",
    "database_proxy",
    "open_database",
    "init_database",
    "close_database",
    "get_database",
    "is_sqlite",
    "write_transaction",
    "reset_connection",
]

logger = logging.getLogger(__name__)

#: The proxy every model's Meta.database points at; `init_database` binds it.
database_proxy = peewee.DatabaseProxy()

#: How long a SQLite statement waits for another writer's lock before failing.
#: Kept short: the writer retries with backoff rather than blocking its mailbox.
DEFAULT_BUSY_TIMEOUT_MS = 1000

#: Every error a database operation raises. Catch ROW_ERRORS first: what is left
#: says "the database is unavailable right now" (locked, gone, revoked, full), and
#: the write is kept and retried.
DATABASE_ERRORS: tuple[type[Exception], ...] = (peewee.DatabaseError, peewee.InterfaceError)

#: Errors caused by the written row itself (a constraint, a bad value): retrying
#: will not help, so the row is isolated and discarded with a log line.
ROW_ERRORS: tuple[type[Exception], ...] = (peewee.IntegrityError, peewee.DataError)

_PG_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 5,
    "application_name": "fieldwatch",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def _create_private(path: str) -> None:
    """Create a SQLite file that does not exist yet with mode 0600 (SQLite gives its -wal and
    -shm files the database file's mode): API-created sites' passwords are stored in it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            logger.warning("database file %s is readable by others (mode %o): it holds site passwords; "
                           "chmod 600 it", path, mode)  # fmt: skip
        return
    except OSError:  # no such directory, read-only place: SQLite reports it when it opens the file
        return
    os.close(fd)


def open_database(
    url: str,
    *,
    busy_timeout_ms: int | None = None,
    schema: str | None = None,
    **connect_params: Any,
) -> peewee.Database:
    """Build (without connecting) the peewee Database a storage URL names.

    SQLite URLs may carry `?busy_timeout=<ms>`. For PostgreSQL, `schema` sets the
    search_path of every connection (tests use one schema each); other keyword
    arguments go to the driver.
    """
    scheme = urlparse(url).scheme.lower()
    kwargs: dict[str, Any] = parse_url(url)
    database = kwargs.pop("database", "")
    if scheme == "sqlite":
        if not database or database == ":memory:":
            # every thread has its own connection: an in-memory database would differ per thread
            raise ValueError(f"{url!r}: no database file (use sqlite:///path/to/file.db)")
        url_busy_ms = int(kwargs.pop("busy_timeout", DEFAULT_BUSY_TIMEOUT_MS))
        busy_ms = url_busy_ms if busy_timeout_ms is None else busy_timeout_ms
        pragmas = [
            ("journal_mode", "wal"),
            ("foreign_keys", 1),
            ("busy_timeout", busy_ms),
            ("synchronous", "normal"),
        ]
        kwargs.update(connect_params)
        _create_private(database)
        return peewee.SqliteDatabase(database, pragmas=pragmas, timeout=busy_ms / 1000.0, **kwargs)
    if scheme in ("postgresql", "postgres"):
        if not database:
            raise ValueError(f"{url!r}: no database name (use postgresql://user@host/dbname)")
        params = dict(_PG_DEFAULTS)
        params.update(kwargs)
        params.update(connect_params)
        if schema is not None:
            options = str(params.get("options") or "")
            params["options"] = f"{options} -c search_path={schema}".strip()
        return peewee.PostgresqlDatabase(database, **params)
    raise ValueError(f"{url!r}: unsupported storage URL scheme {scheme!r} (sqlite or postgresql)")


def init_database(url: str | peewee.Database, **kwargs: Any) -> peewee.Database:
    """Open the database a URL names (or take a built one) and bind the proxy to it."""
    db = url if isinstance(url, peewee.Database) else open_database(url, **kwargs)
    current = database_proxy.obj
    if current is not None and current is not db:
        logger.debug("storage proxy re-initialised")
        reset_connection(current)
    database_proxy.initialize(db)
    return db


def get_database() -> peewee.Database:
    """The database the proxy is bound to (RuntimeError if none yet)."""
    db = database_proxy.obj
    if db is None:
        raise RuntimeError("storage database not initialised (call init_database first)")
    assert isinstance(db, peewee.Database)
    return db


def close_database() -> None:
    """Close the calling thread's connection and unbind the proxy."""
    db = database_proxy.obj
    if db is not None:
        reset_connection(db)
    database_proxy.obj = None


def is_sqlite(db: peewee.Database) -> bool:
    """Whether `db` is a SQLite database (some SQL differs)."""
    return isinstance(db, peewee.SqliteDatabase)


def write_transaction(db: peewee.Database) -> AbstractContextManager[Any]:
    """A transaction for writing: BEGIN IMMEDIATE on SQLite (takes the write lock
    up front, so the busy timeout applies), a plain transaction elsewhere."""
    if is_sqlite(db):
        return db.atomic(lock_type="IMMEDIATE")
    return db.atomic()


def reset_connection(db: peewee.Database) -> None:
    """Drop the calling thread's connection, even a dead one, so the next use reconnects."""
    try:
        if not db.is_closed():
            db.close()
    except Exception:  # a dead connection may fail to close: forget it instead
        logger.debug("closing a broken database connection failed; discarding it", exc_info=True)
        try:
            conn = cast(Any, db)._state.conn
            db.dispose()
            if conn is not None:
                conn.close()
        except Exception:  # best effort: the socket may already be gone
            logger.debug("discarding the connection failed", exc_info=True)
