"""Config without secrets, for API responses, logs and metrics.

Keys named in `SECRET_KEYS` (passwords, tokens) are left out, and a password
inside a URL's user info (`scheme://user:pw@host`) is replaced by `<redacted>`.
Certificate and key *files* are referred to by path only; their contents are
never read into the config.
"""

from __future__ import annotations

from typing import Any

from fieldwatch.config.model import EndpointConfig
from fieldwatch.schema.redact import REDACTED, SECRET_KEYS, public_value, redact_url

__all__ = ["REDACTED", "SECRET_KEYS", "endpoint_public_dict", "public_value", "redact_url"]


def endpoint_public_dict(ep: EndpointConfig) -> dict[str, Any]:
    """An endpoint's config as in YAML (options beside name/kind/enabled), secrets left out."""
    out: dict[str, Any] = {"name": ep.name, "kind": ep.kind, "enabled": ep.enabled}
    out.update(public_value(ep.options))
    out["supervision"] = public_value(ep.supervision) if ep.supervision is not None else None
    return out
