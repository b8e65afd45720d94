"""Threshold and hysteresis logic (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from fieldwatch.actors.opcua.thresholds import HIGH, LOW, NORMAL, ThresholdTracker, default_hysteresis, numeric


def _actions(tracker: ThresholdTracker, values: Sequence[object]) -> list[str | None]:
    out: list[str | None] = []
    for value in values:
        change = tracker.update(value)
        out.append(None if change is None else f"{change.action}:{change.side}")
    return out


def test_high_opens_and_hysteresis_prevents_flapping() -> None:
    tracker = ThresholdTracker("level", high=9.5, low=None, hysteresis=0.2)
    assert _actions(tracker, [9.0, 9.6, 9.4, 9.55, 9.31, 9.29, 9.4]) == [
        None, "open:high", None, None, None, "resolve:normal", None,
    ]
    assert not tracker.active


def test_value_hovering_at_the_limit_opens_once() -> None:
    tracker = ThresholdTracker("level", high=10.0, low=0.0)
    hovering = [10.01, 9.99, 10.02, 9.98, 10.0, 10.03, 9.97]
    assert [a for a in _actions(tracker, hovering) if a] == ["open:high"]
    assert tracker.active and tracker.side == HIGH


def test_low_limit_and_crossing_to_the_other_side() -> None:
    tracker = ThresholdTracker("level", high=9.5, low=0.5, hysteresis=0.1)
    assert _actions(tracker, [0.4, 0.55, 0.61, 9.6, 0.1]) == [
        "open:low", None, "resolve:normal", "open:high", "open:low",
    ]
    assert tracker.side == LOW


def test_message_names_reading_value_and_limit() -> None:
    tracker = ThresholdTracker("level", high=9.5, low=None)
    change = tracker.update(9.75)
    assert change is not None and change.message == "level = 9.75 above high limit 9.5"
    change = tracker.update(1.0)
    assert change is not None and "back within limits" in change.message


def test_non_numeric_values_are_ignored() -> None:
    tracker = ThresholdTracker("level", high=1.0, low=None, hysteresis=0.0)
    assert _actions(tracker, ["high", None, math.nan, [1, 2], {"a": 1}]) == [None] * 5
    assert _actions(tracker, [True, False]) == [None, None]  # bools are 1/0; 1.0 is not above 1.0
    assert _actions(tracker, [2]) == ["open:high"]


def test_alert_open_from_an_earlier_generation_resolves_only_when_clearly_normal() -> None:
    tracker = ThresholdTracker("level", high=10.0, low=0.0, hysteresis=0.5, active=True)
    assert tracker.active
    assert _actions(tracker, [9.8, 11.0]) == [None, "open:high"]  # inside the band: unknown side kept
    tracker = ThresholdTracker("level", high=10.0, low=0.0, hysteresis=0.5, active=True)
    assert _actions(tracker, [5.0]) == ["resolve:normal"]
    assert tracker.side == NORMAL


def test_default_hysteresis_and_validation() -> None:
    assert default_hysteresis(10.0, 0.0) == pytest.approx(0.2)
    assert default_hysteresis(50.0, None) == pytest.approx(1.0)
    assert default_hysteresis(None, -5.0) == pytest.approx(0.1)
    assert ThresholdTracker("x", high=10.0, low=0.0).hysteresis == pytest.approx(0.2)
    with pytest.raises(ValueError):
        ThresholdTracker("x", high=None, low=None)
    with pytest.raises(ValueError):
        ThresholdTracker("x", high=1.0, low=2.0)


def test_numeric() -> None:
    assert numeric(3) == 3.0 and numeric(2.5) == 2.5 and numeric(True) == 1.0
    assert numeric("3") is None and numeric(None) is None and numeric(math.inf) is None
