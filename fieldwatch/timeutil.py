"""Time helpers: one clock for the whole daemon, RFC 3339 formatting and parsing."""

from __future__ import annotations

import functools
import math
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


@functools.lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of a whole Unix second (listings show many times of the same seconds)."""
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _datetime_text(dt: datetime) -> str:
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_rfc3339(ts: float | datetime | None) -> str | None:
    """Unix seconds or a datetime to an RFC 3339 UTC string with milliseconds.

    For Unix seconds the same text as `datetime.fromtimestamp(ts, UTC).isoformat(timespec=
    "milliseconds")` (microseconds rounded half to even, then truncated to milliseconds), with
    the date and time of day formatted once per second: a listing of 10,000 endpoints formats
    thousands of `last_data_at` a poll (issue 17).
    """
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return _datetime_text(ts)
    second = math.floor(ts)
    micros = round((ts - second) * 1e6)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    if not 0 < second < 253_402_300_800:  # before 1970 or after 9999: the general path
        return _datetime_text(datetime.fromtimestamp(ts, tz=UTC))
    return f"{_second_text(second)}.{micros // 1000:03d}Z"


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
