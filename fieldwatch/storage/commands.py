"""Synchronous storage commands (asked of the persistence actor) and the rows they return.

Commands go through `StorageGateway.command(cmd)`; writes queued before a command are
committed before it runs. Unknown names raise NotFoundError, duplicates ConflictError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EndpointSpec",
    "SiteSpec",
    "StoredEndpoint",
    "StoredSite",
    "SyncConfig",
    "SetSiteEnabled",
    "SetEndpointEnabled",
    "CreateSite",
    "ReplaceSite",
    "DeleteSite",
    "DeleteEndpoint",
    "SetTopicActive",
    "LoadSites",
    "Command",
]


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """An endpoint as declared (YAML or API); `config_json` is its config without the name."""

    name: str
    kind: str
    enabled: bool
    config_json: str = "{}"


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site as declared, with its endpoints."""

    name: str
    enabled: bool
    config_json: str = "{}"
    endpoints: tuple[EndpointSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredEndpoint:
    """An endpoint row as stored (plain values, safe to hand to other threads)."""

    id: int
    site: str
    name: str
    kind: str
    enabled: bool
    origin: str
    config_json: str
    generation: int
    restarts: int
    reconnects: int


@dataclass(frozen=True, slots=True)
class StoredSite:
    """A site row as stored, with its endpoints ordered by name."""

    id: int
    name: str
    enabled: bool
    origin: str
    config_json: str
    endpoints: tuple[StoredEndpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Create or update the sites the YAML declares (origin 'config').

    `enabled` is only the initial value: an existing row keeps its stored flag. Sites
    and endpoints created through the API are kept; config-origin ones the YAML no
    longer declares are deleted. Returns every stored site.

    With `instance` (a cluster, SPEC section 10) the deletion rule is per instance: the
    sites declared are recorded as declared by `instance`, and a config site is deleted
    only when `instance` declared it before, no longer does, and no other instance's
    config declares it. Sites other instances declare are never deleted.
    """

    sites: Sequence[SiteSpec]
    instance: str | None = None


@dataclass(frozen=True, slots=True)
class SetSiteEnabled:
    """Store a site's enabled flag; returns the StoredSite."""

    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class SetEndpointEnabled:
    """Store one endpoint's enabled flag; returns its StoredSite."""

    site: str
    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class CreateSite:
    """Create a site and its endpoints (ConflictError if the name exists); returns the StoredSite."""

    site: SiteSpec
    origin: str = "api"


@dataclass(frozen=True, slots=True)
class ReplaceSite:
    """Replace a site's config, flags and endpoints (NotFoundError if missing).

    Endpoints keep their id (and history) when their name stays; others are deleted.
    """

    site: SiteSpec


@dataclass(frozen=True, slots=True)
class DeleteSite:
    """Delete a site, its endpoints and their rows (events keep their names)."""

    name: str


@dataclass(frozen=True, slots=True)
class DeleteEndpoint:
    """Delete one endpoint and its rows; later writes for it are discarded."""

    endpoint_id: int


@dataclass(frozen=True, slots=True)
class SetTopicActive:
    """Switch processing of a discovered topic; returns whether the flag changed."""

    endpoint_id: int
    topic: str
    active: bool


@dataclass(frozen=True, slots=True)
class LoadSites:
    """Every stored site (or those `names` lists), ordered by name."""

    names: tuple[str, ...] | None = None


Command = (
    SyncConfig
    | SetSiteEnabled
    | SetEndpointEnabled
    | CreateSite
    | ReplaceSite
    | DeleteSite
    | DeleteEndpoint
    | SetTopicActive
    | LoadSites
)
