"""Writing test data straight through the writer's functions (no actor)."""

from __future__ import annotations

from collections.abc import Sequence

import peewee

from fieldwatch.storage import commands as c
from fieldwatch.storage import sites
from fieldwatch.storage.batch import EndpointIndex, apply_writes
from fieldwatch.storage.db import write_transaction
from fieldwatch.storage.writes import Write

#: Every raw row as a table: reading_raw and the rows the writer staged in reading_recent
#: (storage/raw.py; empty on PostgreSQL).
ALL_RAW = (
    "(SELECT series_id, t, seq, value, aux, lag, quality, text FROM reading_raw UNION ALL "
    "SELECT series_id, t, seq, value, aux, lag, quality, text FROM reading_recent)"
)


def create_site(db: peewee.Database, name: str, *endpoints: tuple[str, str, str]) -> dict[str, int]:
    """Create a site with (name, kind, config_json) endpoints; return name -> id."""
    spec = c.SiteSpec(name, True, "{}", tuple(c.EndpointSpec(n, k, True, cfg) for n, k, cfg in endpoints))
    with write_transaction(db):
        stored = sites.execute(c.CreateSite(spec), 0.0)
    return {e.name: e.id for e in stored.endpoints}


def write(db: peewee.Database, writes: Sequence[Write], now: float = 0.0) -> None:
    """Apply writes in one transaction, as the persistence actor does."""
    index = EndpointIndex()
    index.refresh(db)
    with write_transaction(db):
        apply_writes(db, list(writes), index.names, now)
