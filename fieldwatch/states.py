"""Endpoint states (SPEC section 4): plain ordered constants, no dependencies."""

from __future__ import annotations

DISABLED = "disabled"
CONNECTING = "connecting"
UP = "up"
STALE = "stale"
DOWN = "down"
FAULTY = "faulty"

ALL_STATES: tuple[str, ...] = (DISABLED, CONNECTING, UP, STALE, DOWN, FAULTY)

#: States that open an alert on entry (the alert condition has the same name).
ALERTING: frozenset[str] = frozenset({DOWN, STALE, FAULTY})
