"""Storage: peewee models, database opening, the write gateway, read queries, retention."""

from __future__ import annotations

from fieldwatch.storage.commands import (
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
from fieldwatch.storage.db import close_database, database_proxy, init_database, open_database
from fieldwatch.storage.gateway import Histogram, StorageGateway, StorageStats
from fieldwatch.storage.migrations import migrate, schema_version
from fieldwatch.storage.writes import (
    AlertOpen,
    AlertResolve,
    Counters,
    DeviceSeen,
    EventRecord,
    GenerationStarted,
    ParseErrorRecord,
    ReadingRecord,
    StateChange,
    TopicSeen,
    Touch,
    Write,
)

__all__ = [
    "AlertOpen",
    "AlertResolve",
    "Counters",
    "CreateSite",
    "DeleteEndpoint",
    "DeleteSite",
    "DeviceSeen",
    "EndpointSpec",
    "EventRecord",
    "GenerationStarted",
    "Histogram",
    "LoadSites",
    "ParseErrorRecord",
    "ReadingRecord",
    "ReplaceSite",
    "SetEndpointEnabled",
    "SetSiteEnabled",
    "SetTopicActive",
    "SiteSpec",
    "StateChange",
    "StorageGateway",
    "StorageStats",
    "StoredEndpoint",
    "StoredSite",
    "SyncConfig",
    "TopicSeen",
    "Touch",
    "Write",
    "close_database",
    "database_proxy",
    "init_database",
    "migrate",
    "open_database",
    "schema_version",
]
