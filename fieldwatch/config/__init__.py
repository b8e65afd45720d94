"""Configuration: fieldwatch.yaml and supervision.yaml, validated with file/line/key errors."""

from __future__ import annotations

from fieldwatch.config.loader import load_config, parse_config_text
from fieldwatch.config.model import (
    Config,
    EndpointConfig,
    HttpConfig,
    LoggingConfig,
    SiteConfig,
    StorageConfig,
)
from fieldwatch.config.redact import SECRET_KEYS, endpoint_public_dict
from fieldwatch.config.supervision import (
    load_supervision,
    parse_supervision,
    parse_supervision_text,
)

__all__ = [
    "SECRET_KEYS",
    "Config",
    "EndpointConfig",
    "HttpConfig",
    "LoggingConfig",
    "SiteConfig",
    "StorageConfig",
    "endpoint_public_dict",
    "load_config",
    "load_supervision",
    "parse_config_text",
    "parse_supervision",
    "parse_supervision_text",
]
