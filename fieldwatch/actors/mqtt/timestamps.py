"""Reading a source timestamp from a payload: Unix seconds or milliseconds, numeric text, RFC 3339."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["NUMBER_RE", "parse_timestamp"]

#: A decimal number as text (what `number` payloads and numeric strings in JSON must look like).
NUMBER_RE = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*\Z")
_MS_THRESHOLD = 1e11  # larger epoch values are milliseconds (1e11 s is the year 5138)
_RFC3339_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z")


def parse_timestamp(value: Any) -> float:
    """Unix seconds from a number (milliseconds when > 1e11), numeric text or RFC 3339 text."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is a boolean")
    if isinstance(value, str):
        if NUMBER_RE.match(value):
            value = float(value)
        else:
            return _parse_rfc3339(value)
    if not isinstance(value, (int, float)):
        raise ValueError(f"timestamp {value!r} is neither a number nor an RFC 3339 string")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp {value!r} is out of range")
    return seconds / 1000.0 if seconds > _MS_THRESHOLD else seconds


def _parse_rfc3339(text: str) -> float:
    found = _RFC3339_RE.match(text.strip())
    if not found:
        raise ValueError(f"timestamp {text[:100]!r} is not RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    fraction, offset = found.group(7), found.group(8)
    leap = second == 60  # RFC 3339 allows a leap second; count it as the next second
    try:
        stamp = datetime(year, month, day, hour, minute, 59 if leap else second, tzinfo=UTC)
    except ValueError as err:
        raise ValueError(f"timestamp {text[:100]!r}: {err}") from None
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        stamp -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return stamp.timestamp() + (1.0 if leap else 0.0) + (float("0." + fraction) if fraction else 0.0)
