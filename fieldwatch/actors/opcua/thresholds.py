"""Threshold alerts on numeric readings, with hysteresis (pure logic, no I/O).

A threshold opens its alert when a value goes above `high` or below `low`,
and resolves it only once the value is back inside the limits by more than
the hysteresis band, so a value hovering at a limit does not flap:

    high = 9.5, hysteresis = 0.2:  9.6 opens;  9.4 keeps it open;  9.29 resolves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["NORMAL", "HIGH", "LOW", "UNKNOWN", "Change", "ThresholdTracker", "default_hysteresis", "numeric"]

NORMAL = "normal"
HIGH = "high"
LOW = "low"
#: An alert may be open from an earlier actor generation; which side is not known.
UNKNOWN = "unknown"

#: Hysteresis when the config gives none: this fraction of the span (or of the single limit).
DEFAULT_HYSTERESIS_RATIO = 0.02


@dataclass(frozen=True, slots=True)
class Change:
    """What the caller must do after a value: open (or re-word) the alert, or resolve it."""

    action: str  # "open" | "resolve"
    side: str  # HIGH | LOW | NORMAL
    message: str


def default_hysteresis(high: float | None, low: float | None) -> float:
    """2 % of high - low when both limits are set, else 2 % of the one limit's magnitude."""
    if high is not None and low is not None:
        return abs(high - low) * DEFAULT_HYSTERESIS_RATIO
    limit = high if high is not None else low
    return abs(limit or 0.0) * DEFAULT_HYSTERESIS_RATIO


def numeric(value: Any) -> float | None:
    """The value as a finite float if it is a number (bools count as 0/1), else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


class ThresholdTracker:
    """The alert state of one threshold on one reading."""

    def __init__(
        self,
        reading: str,
        *,
        high: float | None,
        low: float | None,
        hysteresis: float | None = None,
        active: bool = False,
    ) -> None:
        if high is None and low is None:
            raise ValueError("a threshold needs high, low or both")
        if high is not None and low is not None and not low < high:
            raise ValueError("low must be less than high")
        self.reading = reading
        self.high = high
        self.low = low
        self.hysteresis = default_hysteresis(high, low) if hysteresis is None else max(0.0, hysteresis)
        self.side = UNKNOWN if active else NORMAL

    @property
    def active(self) -> bool:
        """Whether the alert is (believed to be) open."""
        return self.side != NORMAL

    def update(self, value: Any) -> Change | None:
        """Feed one value; return what changed (None: nothing to do, incl. non-numeric values)."""
        number = numeric(value)
        if number is None:
            return None
        side = self._classify(number)
        if side == self.side:
            return None
        if side == NORMAL:
            self.side = NORMAL
            return Change("resolve", NORMAL, f"{self.reading} = {number:g}, back within limits")
        if side == UNKNOWN:
            return None
        self.side = side
        if side == HIGH:
            return Change("open", HIGH, f"{self.reading} = {number:g} above high limit {self.high:g}")
        return Change("open", LOW, f"{self.reading} = {number:g} below low limit {self.low:g}")

    def _classify(self, number: float) -> str:
        """The side `number` puts us on, given where we are (the band keeps the current side)."""
        above = self.high is not None and number > self.high
        below = self.low is not None and number < self.low
        if above:
            return HIGH
        if below:
            return LOW
        clear_high = self.high is None or number < self.high - self.hysteresis
        clear_low = self.low is None or number > self.low + self.hysteresis
        if self.side == HIGH:
            return NORMAL if clear_high else HIGH
        if self.side == LOW:
            return NORMAL if clear_low else LOW
        if self.side == UNKNOWN:
            return NORMAL if clear_high and clear_low else UNKNOWN
        return NORMAL
