"""The read side of sites and endpoints: status shapes of SPEC §6, checked for freshness.

`up` is reported only for data fresher than the endpoint's stale_after_s (ICMP: its
probe's detection bound), so even a hung actor cannot hold an `up` that is false.
"""

from __future__ import annotations

from typing import Any

from fieldwatch import states
from fieldwatch.errors import NotFoundError
from fieldwatch.storage.models import Endpoint, Site
from fieldwatch.storage.paging import (
    public_config,
    read_errors,
    rfc,
)
from fieldwatch.timeutil import now as _now

__all__ = ["effective_state", "list_sites", "get_site", "get_endpoint"]


def _stale_after_s(kind: str, config: dict[str, Any]) -> float | None:
    value = config.get("stale_after_s")
    if value:
        return float(value)
    if kind == "icmp":  # the probe's own detection bound
        return (
            float(config.get("interval_s", 10)) * int(config.get("down_after", 2))
            + float(config.get("timeout_s", 1))
            + 1.0
        )
    return None


def effective_state(state: str, kind: str, last_data_at: float | None, config: dict[str, Any], now: float) -> str:
    """The state a reader may show: `up` only with data fresher than stale_after_s."""
    if state != states.UP:
        return state
    bound = _stale_after_s(kind, config)
    if bound is not None and (last_data_at is None or now - last_data_at > bound):
        return states.STALE
    return state


def _endpoint_dict(row: Endpoint, site_name: str, now: float) -> dict[str, Any]:
    config = public_config(row.config)
    state = effective_state(row.state, row.kind, row.last_data_at, config, now)
    return {
        "id": row.id,
        "site": site_name,
        "name": row.name,
        "kind": row.kind,
        "enabled": bool(row.enabled),
        "state": state,
        "since": rfc(row.since),
        "reason": row.reason if state == row.state else f"no data since {rfc(row.last_data_at)}",
        "down_since": rfc(row.down_since),
        "last_data_at": rfc(row.last_data_at),
        "generation": row.generation,
        "restarts": row.restarts,
        "reconnects": row.reconnects,
        "config": config,
    }


def _sites(where: Any = None) -> list[dict[str, Any]]:
    now = _now()
    query = Site.select().order_by(Site.name)
    if where is not None:
        query = query.where(where)
    sites = list(query)
    endpoints: dict[int, list[dict[str, Any]]] = {site.id: [] for site in sites}
    names = {site.id: site.name for site in sites}
    if sites:
        for row in Endpoint.select().where(Endpoint.site.in_(list(endpoints))).order_by(Endpoint.name):
            endpoints[row.site_id].append(_endpoint_dict(row, names[row.site_id], now))
    return [
        {"name": site.name, "enabled": bool(site.enabled), "origin": site.origin, "endpoints": endpoints[site.id]}
        for site in sites
    ]


def list_sites() -> list[dict[str, Any]]:
    """Every site with its endpoints and their (freshness-checked) states, by name."""
    with read_errors():
        return _sites()


def get_site(name: str) -> dict[str, Any]:
    """One site; NotFoundError if it does not exist."""
    with read_errors():
        found = _sites(Site.name == name)
    if not found:
        raise NotFoundError(f"site {name!r} does not exist")
    return found[0]


def get_endpoint(site: str, name: str) -> dict[str, Any]:
    """One endpoint with its latest readings (one per name) under `readings`."""
    with read_errors():
        row = Endpoint.select().join(Site).where((Site.name == site) & (Endpoint.name == name)).first()
        if row is None:
            raise NotFoundError(f"endpoint {site}/{name} does not exist")
        result = _endpoint_dict(row, site, _now())
    from fieldwatch.storage.readings import latest_readings  # readings imports paging, as we do

    result["readings"] = latest_readings(row.id)
    return result
