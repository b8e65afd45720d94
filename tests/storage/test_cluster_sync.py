"""SyncConfig in a cluster (SPEC section 10): each instance syncs what it declares and never
deletes a site another instance's config declares; migration 3's tables on both backends."""

from __future__ import annotations

from typing import Any

import peewee

from fieldwatch.storage import sites
from fieldwatch.storage.commands import EndpointSpec, SiteSpec, SyncConfig
from fieldwatch.storage.db import is_sqlite, write_transaction


def _spec(name: str) -> SiteSpec:
    return SiteSpec(name, True, "{}", (EndpointSpec("ping", "icmp", True, '{"host": "127.0.0.1"}'),))


def _sync(db: peewee.Database, names: list[str], instance: str | None) -> list[str]:
    with write_transaction(db):
        stored: Any = sites.execute(SyncConfig([_spec(n) for n in names], instance), 1.0)
    return [row.name for row in stored]


def test_an_instance_never_deletes_a_site_another_instance_declares(db: peewee.Database) -> None:
    assert _sync(db, ["a1", "shared"], "a") == ["a1", "shared"]
    assert _sync(db, ["b1", "shared"], "b") == ["a1", "b1", "shared"]
    # a drops both its sites: a1 (only a declared it) goes, shared (b declares it) stays
    assert _sync(db, [], "a") == ["b1", "shared"]
    # b restarts with the same config: nothing changes
    assert _sync(db, ["b1", "shared"], "b") == ["b1", "shared"]
    # b drops shared: now nobody declares it, so it goes
    assert _sync(db, ["b1"], "b") == ["b1"]


def test_without_an_instance_the_single_instance_rule_still_deletes_undeclared_sites(db: peewee.Database) -> None:
    assert _sync(db, ["x", "y"], None) == ["x", "y"]
    assert _sync(db, ["y"], None) == ["y"]


def test_a_site_that_was_never_declared_by_an_instance_is_kept(db: peewee.Database) -> None:
    """Sites synced before the cluster existed (no declaration rows) are not deleted by a
    cluster instance that does not declare them: nobody knows who declared them."""
    assert _sync(db, ["legacy"], None) == ["legacy"]
    assert _sync(db, ["mine"], "a") == ["legacy", "mine"]


def test_the_lease_tables_exist_on_postgresql_only(db: peewee.Database) -> None:
    tables = set(db.get_tables())
    assert "site_declaration" in tables
    if is_sqlite(db):
        assert not {"site_lease", "cluster_instance"} & tables
    else:
        assert {"site_lease", "cluster_instance"} <= tables
