"""Secrets kept out of errors, logs and API responses.

Keys named in `SECRET_KEYS` (passwords, tokens) are left out, and a password
inside a URL's user info (`scheme://user:pw@host`) is replaced by `<redacted>`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "SECRET_KEYS", "public_value", "redact_url"]

SECRET_KEYS: frozenset[str] = frozenset({"password", "token"})
"""Keys whose values are secrets: never shown in errors, logs or API responses."""

REDACTED = "<redacted>"
"""What is shown instead of a secret."""

# A scheme starts only where no scheme character precedes it: one attempt per run of
# letters, so the search stays linear (without the lookbehind it is quadratic in a long word).
_URL_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")


def redact_url(value: str) -> str:
    """`value` with the password of any `scheme://user:password@host` replaced."""
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)


def public_value(value: Any) -> Any:
    """A JSON-able copy of a config value (dataclasses, tuples, mappings) without secrets."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: public_value(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in SECRET_KEYS
        }
    if isinstance(value, Mapping):
        return {str(k): public_value(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, (list, tuple)):
        return [public_value(v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value
