"""The site and endpoint commands, as database functions run inside the writer's transaction.

Only the persistence actor calls these (one writer); readers use `queries`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from fieldwatch import states
from fieldwatch.errors import ConflictError, NotFoundError
from fieldwatch.storage.commands import (
    Command,
    CreateSite,
    DeleteEndpoint,
    DeleteSite,
    EndpointSpec,
    LoadSites,
    ReplaceSite,
    SetEndpointEnabled,
    SetSiteEnabled,
    SetTopicActive,
    SiteSpec,
    StoredEndpoint,
    StoredSite,
    SyncConfig,
)
from fieldwatch.storage.models import Endpoint, Site, Topic

__all__ = ["execute", "load_sites"]

logger = logging.getLogger(__name__)


def _check_json(text: str, what: str) -> str:
    try:
        json.loads(text)
    except ValueError as err:
        raise ValueError(f"{what}: config is not valid JSON: {err}") from err
    return text


def _stored_endpoint(row: Endpoint, site_name: str) -> StoredEndpoint:
    return StoredEndpoint(
        id=row.id,
        site=site_name,
        name=row.name,
        kind=row.kind,
        enabled=bool(row.enabled),
        origin=row.origin,
        config_json=row.config,
        generation=row.generation,
        restarts=row.restarts,
        reconnects=row.reconnects,
    )


def load_sites(names: Iterable[str] | None = None) -> tuple[StoredSite, ...]:
    """Stored sites (all, or those named) with their endpoints, ordered by name."""
    query = Site.select().order_by(Site.name)
    if names is not None:
        query = query.where(Site.name.in_(list(names)))
    sites = list(query)
    by_site: dict[int, list[StoredEndpoint]] = {site.id: [] for site in sites}
    names_by_id = {site.id: site.name for site in sites}
    if sites:
        rows = Endpoint.select().where(Endpoint.site.in_(list(by_site))).order_by(Endpoint.name)
        for row in rows:
            by_site[row.site_id].append(_stored_endpoint(row, names_by_id[row.site_id]))
    return tuple(
        StoredSite(
            id=site.id,
            name=site.name,
            enabled=bool(site.enabled),
            origin=site.origin,
            config_json=site.config,
            endpoints=tuple(by_site[site.id]),
        )
        for site in sites
    )


def _load_one(name: str) -> StoredSite:
    found = load_sites([name])
    if not found:
        raise NotFoundError(f"site {name!r} does not exist")
    return found[0]


def _get_site(name: str) -> Site:
    site = Site.get_or_none(Site.name == name)
    if site is None:
        raise NotFoundError(f"site {name!r} does not exist")
    return site


def _create_endpoint(site: Site, spec: EndpointSpec, origin: str, now: float) -> None:
    initial = states.CONNECTING if site.enabled and spec.enabled else states.DISABLED
    Endpoint.create(
        site=site,
        name=spec.name,
        kind=spec.kind,
        enabled=spec.enabled,
        origin=origin,
        config=_check_json(spec.config_json, f"{site.name}/{spec.name}"),
        state=initial,
        since=now,
        updated_at=now,
    )


def _check_unique_endpoints(spec: SiteSpec) -> None:
    seen: set[str] = set()
    for endpoint in spec.endpoints:
        if endpoint.name in seen:
            raise ConflictError(f"site {spec.name!r} declares endpoint {endpoint.name!r} twice")
        seen.add(endpoint.name)


def _create_site(spec: SiteSpec, origin: str, now: float) -> None:
    _check_unique_endpoints(spec)
    if Site.get_or_none(Site.name == spec.name) is not None:
        raise ConflictError(f"site {spec.name!r} already exists")
    site = Site.create(
        name=spec.name,
        enabled=spec.enabled,
        origin=origin,
        config=_check_json(spec.config_json, spec.name),
        created_at=now,
        updated_at=now,
    )
    for endpoint in spec.endpoints:
        _create_endpoint(site, endpoint, origin, now)


def _sync_site(spec: SiteSpec, now: float) -> None:
    """Create or update one YAML-declared site; stored enabled flags win over the YAML."""
    _check_unique_endpoints(spec)
    site = Site.get_or_none(Site.name == spec.name)
    if site is None:
        _create_site(spec, "config", now)
        return
    Site.update(config=_check_json(spec.config_json, spec.name), origin="config", updated_at=now).where(
        Site.id == site.id
    ).execute()
    existing = {row.name: row for row in Endpoint.select().where(Endpoint.site == site.id)}
    declared = {endpoint.name for endpoint in spec.endpoints}
    for endpoint in spec.endpoints:
        row = existing.get(endpoint.name)
        if row is None:
            _create_endpoint(site, endpoint, "config", now)
        else:
            Endpoint.update(
                kind=endpoint.kind,
                config=_check_json(endpoint.config_json, f"{spec.name}/{endpoint.name}"),
                origin="config",
                updated_at=now,
            ).where(Endpoint.id == row.id).execute()
    for name, row in existing.items():
        if name not in declared and row.origin == "config":
            logger.warning("[sites/%s/%s] no longer in the configuration: deleting it", spec.name, name)
            Endpoint.delete().where(Endpoint.id == row.id).execute()


def _undeclared_by(instance: str, names: list[str], now: float) -> list[Site]:
    """Record that `instance`'s config declares exactly `names` (site_declaration rows);
    return the config sites it declared before, no longer does, and nobody else declares."""
    db = Site._meta.database
    p = db.param
    ids = {site.id for site in Site.select(Site.id).where(Site.name.in_(names))} if names else set()
    before = {row[0] for row in db.execute_sql(f"SELECT site_id FROM site_declaration WHERE instance = {p}",
                                               (instance,))}
    db.execute_sql(f"DELETE FROM site_declaration WHERE instance = {p}", (instance,))
    for site_id in sorted(ids):
        db.execute_sql(f"INSERT INTO site_declaration (site_id, instance, declared_at) VALUES ({p}, {p}, {p})",
                       (site_id, instance, now))
    dropped = before - ids
    if not dropped:
        return []
    declared = {row[0] for row in db.execute_sql("SELECT DISTINCT site_id FROM site_declaration")}
    kept = sorted(dropped & declared)
    if kept:
        logger.info("%d sites no longer in this instance's configuration are kept: other instances declare them",
                    len(kept))
    return list(Site.select().where((Site.origin == "config") & Site.id.in_(sorted(dropped - declared))))


def _sync_config(specs: Iterable[SiteSpec], now: float, instance: str | None = None) -> tuple[StoredSite, ...]:
    specs = list(specs)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ConflictError("the configuration declares a site twice")
    for spec in specs:
        _sync_site(spec, now)
    if instance is None:
        gone = list(Site.select().where((Site.origin == "config") & (Site.name.not_in(names))))
    else:
        gone = _undeclared_by(instance, names, now)
    for site in gone:
        logger.warning("[sites/%s] no longer in the configuration: deleting it", site.name)
        Site.delete().where(Site.id == site.id).execute()
    return load_sites()


def _replace_site(spec: SiteSpec, now: float) -> StoredSite:
    _check_unique_endpoints(spec)
    site = _get_site(spec.name)
    Site.update(enabled=spec.enabled, config=_check_json(spec.config_json, spec.name), updated_at=now).where(
        Site.id == site.id
    ).execute()
    site = Site.get_by_id(site.id)
    existing = {row.name: row for row in Endpoint.select().where(Endpoint.site == site.id)}
    for endpoint in spec.endpoints:
        row = existing.pop(endpoint.name, None)
        if row is None:
            _create_endpoint(site, endpoint, "api", now)
        else:
            Endpoint.update(
                kind=endpoint.kind,
                enabled=endpoint.enabled,
                config=_check_json(endpoint.config_json, f"{spec.name}/{endpoint.name}"),
                updated_at=now,
            ).where(Endpoint.id == row.id).execute()
    for row in existing.values():
        Endpoint.delete().where(Endpoint.id == row.id).execute()
    return _load_one(spec.name)


def _set_endpoint_enabled(site_name: str, name: str, enabled: bool, now: float) -> StoredSite:
    site = _get_site(site_name)
    updated = (
        Endpoint.update(enabled=enabled, updated_at=now)
        .where((Endpoint.site == site.id) & (Endpoint.name == name))
        .execute()
    )
    if not updated:
        raise NotFoundError(f"endpoint {site_name}/{name} does not exist")
    return _load_one(site_name)


def _set_topic_active(endpoint_id: int, topic: str, active: bool) -> bool:
    row = Topic.get_or_none((Topic.endpoint == endpoint_id) & (Topic.topic == topic))
    if row is None:
        raise NotFoundError(f"topic {topic!r} was never seen on endpoint {endpoint_id}")
    if bool(row.is_active) == active:
        return False
    Topic.update(is_active=active).where(Topic.id == row.id).execute()
    return True


def execute(cmd: Command, now: float) -> Any:
    """Run one command inside the caller's transaction and return its result."""
    if isinstance(cmd, LoadSites):
        return load_sites(cmd.names)
    if isinstance(cmd, SyncConfig):
        return _sync_config(cmd.sites, now, cmd.instance)
    if isinstance(cmd, SetSiteEnabled):
        site = _get_site(cmd.name)
        Site.update(enabled=cmd.enabled, updated_at=now).where(Site.id == site.id).execute()
        return _load_one(cmd.name)
    if isinstance(cmd, SetEndpointEnabled):
        return _set_endpoint_enabled(cmd.site, cmd.name, cmd.enabled, now)
    if isinstance(cmd, CreateSite):
        _create_site(cmd.site, cmd.origin, now)
        return _load_one(cmd.site.name)
    if isinstance(cmd, ReplaceSite):
        return _replace_site(cmd.site, now)
    if isinstance(cmd, DeleteSite):
        site = _get_site(cmd.name)
        Site.delete().where(Site.id == site.id).execute()
        return None
    if isinstance(cmd, DeleteEndpoint):
        if not Endpoint.delete().where(Endpoint.id == cmd.endpoint_id).execute():
            raise NotFoundError(f"endpoint {cmd.endpoint_id} does not exist")
        return None
    if isinstance(cmd, SetTopicActive):
        return _set_topic_active(cmd.endpoint_id, cmd.topic, cmd.active)
    raise TypeError(f"unknown storage command {cmd!r}")
