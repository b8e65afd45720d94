"""The validated configuration: frozen dataclasses, tuples instead of lists.

The per-kind option classes live here (not in `fieldwatch/actors/<kind>/schema.py`,
which re-exports them) so that importing an actor's schema never cycles back
through `fieldwatch.config` into a half-imported actor module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fieldwatch.policy import DEFAULT_POLICY, SupervisionPolicy

__all__ = [
    "ClusterConfig",
    "Config",
    "EndpointConfig",
    "EndpointOptions",
    "HttpConfig",
    "IcmpOptions",
    "LoggingConfig",
    "MqttOptions",
    "NodeConfig",
    "OpcuaOptions",
    "ParserConfig",
    "SecurityConfig",
    "SiteConfig",
    "StorageConfig",
    "ThresholdConfig",
    "TlsConfig",
]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One OPC UA node to read: `id` like "ns=3;i=1002", stored as reading `name`."""

    id: str
    name: str
    poll_s: float = 5.0
    mode: str = "poll"  # poll | subscribe


@dataclass(frozen=True, slots=True)
class ThresholdConfig:
    """An alert when reading `reading` goes above `high` or below `low`."""

    reading: str
    high: float | None = None
    low: float | None = None
    severity: str = "warning"  # info | warning | critical
    hysteresis: float | None = None


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """OPC UA security policy, message mode and certificate files (absolute paths)."""

    policy: str = "None"
    mode: str = "SignAndEncrypt"  # Sign | SignAndEncrypt
    cert: str | None = None
    key: str | None = None
    server_cert: str | None = None
    application_uri: str | None = None  # default: the URI in the certificate's subjectAltName


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """MQTT TLS files (absolute paths); `insecure` skips hostname verification."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class ParserConfig:
    """How MQTT messages on topics matching `match` become readings.

    `match` is an MQTT filter whose `+name` segments are captured; the reading
    name is the `+metric` segment, else `name`. `value` and `timestamp` are
    JSON paths ("$.value") and `id_field` the payload field (or JSON path)
    holding the message's identity (a sequence number, a message id), which
    then replaces the payload hash in the dedup key; all three only for
    `format: json`.
    """

    match: str
    format: str = "json"  # json | number | text
    value: str | None = None
    timestamp: str | None = None
    name: str | None = None
    id_field: str | None = None


@dataclass(frozen=True, slots=True)
class IcmpOptions:
    """Ping `host` every `interval_s`; DOWN after `down_after` failed probes in a row."""

    host: str
    interval_s: float = 10.0
    timeout_s: float = 1.0
    count: int = 1
    down_after: int = 2
    up_after: int = 1


@dataclass(frozen=True, slots=True)
class OpcuaOptions:
    """An OPC UA server at `url` (opc.tcp://...), its nodes and thresholds."""

    url: str
    timeout_s: float = 5.0
    security: SecurityConfig = SecurityConfig()
    username: str | None = None
    password: str | None = None
    stale_after_s: float = 30.0
    nodes: tuple[NodeConfig, ...] = ()
    thresholds: tuple[ThresholdConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """An MQTT broker, the topic filters to subscribe and the parsers of their payloads."""

    host: str
    port: int = 1883
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive_s: int = 60
    qos: int = 1
    topics: tuple[str, ...] = ()
    parsers: tuple[ParserConfig, ...] = ()
    offline_after_s: float | None = 300.0
    stale_after_s: float | None = None
    clean_session: bool | None = None


EndpointOptions = IcmpOptions | OpcuaOptions | MqttOptions
"""The options of one endpoint; which class depends on its `kind`."""


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
