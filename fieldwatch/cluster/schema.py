"""The cluster's two tables, created idempotently, and the fencing check for writers.

`cluster_instance`: one row per instance name (its current boot id, start and last
heartbeat, both by the database clock). `site_lease`: one row per site (owner name and
boot id, epoch, expiry by the database clock). The daemon gets them from storage
migration 3 (fieldwatch/storage/migrations.py runs `CLUSTER_DDL` on PostgreSQL);
`ensure_schema` creates them in a bare schema for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CLUSTER_DDL", "INSTANCE_TABLE", "LEASE_TABLE", "ensure_schema", "fenced", "fenced_sites"]

INSTANCE_TABLE = "cluster_instance"
LEASE_TABLE = "site_lease"

#: Serialises concurrent `ensure_schema` calls (CREATE TABLE IF NOT EXISTS can race).
_SCHEMA_LOCK_KEY = 0x6677_6861  # "fwha"

CLUSTER_DDL = f"""
CREATE TABLE IF NOT EXISTS {INSTANCE_TABLE} (
    name        text PRIMARY KEY,
    boot_id     text NOT NULL,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (
    site        text PRIMARY KEY,
    owner_name  text,
    owner_boot  text,
    epoch       bigint NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at timestamptz
);
CREATE INDEX IF NOT EXISTS {LEASE_TABLE}_owner ON {LEASE_TABLE} (owner_name, owner_boot);
"""


def ensure_schema(connection: Any) -> None:
    """Create the cluster tables in the connection's search_path if missing (commits)."""
    with connection, connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        cur.execute(CLUSTER_DDL)


def fenced_sites(cursor: Any, epochs: Mapping[str, int], idle_timeout_ms: int | None = None) -> set[str]:
    """The sites of `epochs` (site -> lease epoch) whose writes must be refused, in one query.

    For a batch writer: call it inside the batch's transaction with the epochs its rows
    carry, before committing. It locks the lease rows FOR KEY SHARE until that transaction
    ends: renewals (plain UPDATEs) are not blocked, but a takeover (which locks the row
    FOR UPDATE) waits for the commit, so no write of an epoch can commit after another
    instance took the site. A site is fenced when its lease is gone, has another epoch,
    or has expired by the database clock.

    Those locks would keep a takeover waiting as long as the transaction stays open, and
    a frozen writer (SIGSTOP, paused VM) keeps it open forever (its kernel still answers
    TCP keepalives): with `idle_timeout_ms` the same call sets the transaction's
    `idle_in_transaction_session_timeout`, so the server ends such a session (and its
    locks) after that long.
    """
    if not epochs:
        return set()
    prefix = (
        "" if idle_timeout_ms is None else f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_timeout_ms)}; "
    )
    cursor.execute(
        f"{prefix}SELECT l.site FROM {LEASE_TABLE} l "
        "JOIN unnest(%s::text[], %s::bigint[]) AS w(site, epoch) ON w.site = l.site "
        "WHERE l.epoch = w.epoch AND l.expires_at > clock_timestamp() "
        "ORDER BY l.site FOR KEY SHARE OF l",
        (list(epochs), list(epochs.values())),
    )
    valid = {row[0] for row in cursor.fetchall()}
    return set(epochs) - valid


def fenced(cursor: Any, site: str, epoch: int) -> bool:
    """True when a write for `site` under lease `epoch` must be refused (see `fenced_sites`)."""
    return bool(fenced_sites(cursor, {site: epoch}))
