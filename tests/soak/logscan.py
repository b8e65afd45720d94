"""The daemon's JSON log (every incarnation appends to the same file), parsed for the log invariants."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LogLine", "read_log", "top_messages"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log record: Unix time, level, actor path ('' when none), message."""

    time: float
    level: str
    path: str
    message: str


def _parse_time(text: str) -> float:
    """'2026-11-23T12:00:00.123Z' -> Unix seconds."""
    base, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)


def read_log(workdir: Path) -> tuple[list[LogLine], int]:
    """Every parsable line of fieldwatch.log (and rotated files), by time; and how many lines did not parse."""
    lines: list[LogLine] = []
    bad = 0
    files = sorted(workdir.glob("fieldwatch.log*"), reverse=True)
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                try:
                    rec = json.loads(raw)
                    lines.append(LogLine(_parse_time(rec["time"]), rec["level"], rec.get("path", ""), rec["message"]))
                except (ValueError, KeyError):
                    bad += 1
    lines.sort(key=lambda ln: ln.time)
    return lines, bad


def top_messages(lines: list[LogLine], n: int = 8) -> list[tuple[int, str]]:
    """The most frequent messages with numbers masked: (count, template)."""
    counter: Counter[str] = Counter(
        f"{ln.level} {re.sub(r'[0-9]+(?:[.:][0-9]+)*', '#', ln.message)[:140]}" for ln in lines
    )
    return [(count, text) for text, count in counter.most_common(n)]
