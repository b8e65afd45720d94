"""Time helpers: one clock for the whole daemon, RFC 3339 formatting and parsing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["now", "to_rfc3339", "parse_since", "from_unix"]


def now() -> float:
    """Wall-clock Unix seconds (what is stored and shown)."""
    return time.time()


def from_unix(ts: float | None) -> datetime | None:
    """Unix seconds to an aware UTC datetime (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC)


def to_rfc3339(ts: float | datetime | None) -> str | None:
    """Unix seconds or a datetime to an RFC 3339 UTC string with milliseconds."""
    if ts is None:
        return None
    if isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    else:
        dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_since(text: str) -> float:
    """Parse RFC 3339 or Unix seconds into Unix seconds; ValueError if neither."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    dt = datetime.fromisoformat(candidate)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return dt.timestamp()
