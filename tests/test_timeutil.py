"""`to_rfc3339`: the per-second fast path gives exactly the text of the datetime path."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fieldwatch.timeutil import parse_since, to_rfc3339


def _reference(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_same_text_as_the_datetime_path() -> None:
    rng = random.Random(17)
    values = [rng.uniform(1e9, 2e9) for _ in range(20_000)]
    # exact half microseconds (rounded half to even) and the edges of a second
    values += [rng.randint(10**9, 2 * 10**9) + (rng.randint(0, 999_999) + 0.5) / 1e6 for _ in range(20_000)]
    values += [1_700_000_000 + frac for frac in (0.0, 0.0005, 0.0004995, 0.9995, 0.9999995, 0.9999999, 0.999)]
    values += [0.5, 1.0, -1.5, -0.0004, 253_402_300_799.9994]  # outside the fast path's range
    mismatches = [(v, to_rfc3339(v), _reference(v)) for v in values if to_rfc3339(v) != _reference(v)]
    assert mismatches == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1_700_000_000.0, "2023-11-14T22:13:20.000Z"),
        (1_700_000_000.9999996, "2023-11-14T22:13:21.000Z"),  # rounds into the next second
        (1_700_000_000.123, "2023-11-14T22:13:20.123Z"),
        (None, None),
        (datetime(2026, 11, 30, 14, 0, 0, 250_000), "2026-11-30T14:00:00.250Z"),  # naive: UTC
        (datetime(2026, 11, 30, 15, 0, 0, tzinfo=timezone(timedelta(hours=1))), "2026-11-30T14:00:00.000Z"),
    ],
)
def test_known_texts(value: float | datetime | None, text: str | None) -> None:
    assert to_rfc3339(value) == text


def test_round_trip_through_parse_since() -> None:
    for ts in (1_700_000_000.123, 1_800_000_000.5):
        text = to_rfc3339(ts)
        assert text is not None
        assert parse_since(text) == pytest.approx(ts, abs=0.001)
