"""The validated configuration: frozen dataclasses, tuples instead of lists.

Generic configuration only: each kind's options class lives in its protocol folder
(its `KIND.options`, see `fieldwatch/kinds.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fieldwatch.policy import DEFAULT_POLICY, SupervisionPolicy

__all__ = [
    "ClusterConfig",
    "Config",
    "EndpointConfig",
    "EndpointOptions",
    "HttpConfig",
    "LoggingConfig",
    "SiteConfig",
    "StorageConfig",
]


if TYPE_CHECKING:
    from _typeshed import DataclassInstance as EndpointOptions
else:
    EndpointOptions = object
"""The options of one endpoint: an instance of its kind's options dataclass (`KIND.options`)."""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """One endpoint: `options` holds the kind-specific keys written beside name/kind.

    `supervision` is the endpoint's partial ChildPolicy override as a plain
    nested dict (only the keys given), for `SupervisionPolicy.for_endpoint`.
    """

    name: str
    kind: str
    options: EndpointOptions
    enabled: bool = True
    supervision: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A site and its endpoints; `enabled` is only the initial value (the stored flag wins)."""

    name: str
    enabled: bool = True
    endpoints: tuple[EndpointConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Days each tier is kept (SPEC §3 storage.retention; fractions allowed)."""

    raw_days: float = 7
    minute_days: float = 90
    hour_days: float = 730
    events_days: float = 90


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Database URL (sqlite paths made absolute), retention tiers and write queue bound.

    `retention_days` is the old single setting, still accepted (with a warning at start):
    it sets raw_days and events_days.
    """

    url: str = "sqlite:///fieldwatch.db"
    retention: RetentionConfig = RetentionConfig()
    retention_days: float | None = None
    max_queue: int = 100000

    def effective_retention(self) -> RetentionConfig:
        """The tiers in force: `retention`, with the old `retention_days` applied when given."""
        if self.retention_days is None:
            return self.retention
        days = self.retention_days
        return RetentionConfig(days, self.retention.minute_days, self.retention.hour_days, days)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The API listener `host:port` (port 0 picks a free one) and its bearer token."""

    listen: str = "127.0.0.1:8080"
    token: str | None = None
    threads: int = 8
    max_body_bytes: int = 1048576
    max_reading_series: int = 10000


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """The daemon log: rotated file (absolute path, or None for stderr), level, format."""

    file: str | None = None
    level: str = "info"  # debug | info | warning | error
    format: str = "text"  # text | json
    max_bytes: int = 10485760
    backups: int = 5


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """High availability (SPEC section 10): a site whose owner has not renewed its lease
    for `lease_ttl_s` seconds (by the database's clock) may be taken over."""

    lease_ttl_s: float = 15.0


@dataclass(frozen=True, slots=True)
class Config:
    """A whole fieldwatch.yaml, with its supervision policy loaded; `path` is the file."""

    instance: str
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    supervision: SupervisionPolicy = DEFAULT_POLICY
    sites: tuple[SiteConfig, ...] = ()
    path: str | None = None
    cluster: ClusterConfig | None = None  # None: a single instance
