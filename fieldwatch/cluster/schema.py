"""The cluster's two tables, created idempotently, and the fencing check for writers.

`cluster_instance`: one row per instance name (its current boot id, start and last
heartbeat, both by the database clock). `site_lease`: one row per site (owner name and
boot id, epoch, expiry by the database clock). They are created here, outside
fieldwatch/storage/migrations.py, while that module is being rewritten; they should
become a numbered migration there.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INSTANCE_TABLE", "LEASE_TABLE", "ensure_schema", "fenced"]

INSTANCE_TABLE = "cluster_instance"
LEASE_TABLE = "site_lease"

#: Serialises concurrent `ensure_schema` calls (CREATE TABLE IF NOT EXISTS can race).
_SCHEMA_LOCK_KEY = 0x6677_6861  # "fwha"

_DDL = f"""
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
        cur.execute(_DDL)


def fenced(cursor: Any, site: str, epoch: int) -> bool:
    """True when a write for `site` under lease `epoch` must be refused (rolled back).

    Call it inside the writer's transaction, before committing the site's rows. It
    locks the lease row FOR KEY SHARE until that transaction ends: renewals (plain
    UPDATEs) are not blocked, but a takeover (which locks the row FOR UPDATE) waits
    for the commit, so no write of epoch `epoch` can commit after another instance
    took the site. Fenced: the lease is gone, has another epoch, or has expired by
    the database clock.
    """
    cursor.execute(
        f"SELECT epoch = %s AND expires_at > clock_timestamp() FROM {LEASE_TABLE} "
        "WHERE site = %s FOR KEY SHARE",
        (epoch, site),
    )
    row = cursor.fetchone()
    return row is None or not row[0]
