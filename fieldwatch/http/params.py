"""Query parameters: parsed strictly, every bad value (or unknown name) a 400 naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Iterable

import falcon

from fieldwatch.textcheck import text_problem
from fieldwatch.timeutil import parse_since

__all__ = [
    "DEFAULT_LIMIT",
    "LEVELS",
    "MAX_LIMIT",
    "boolean",
    "check_known",
    "cursor",
    "integer",
    "level",
    "limit",
    "number",
    "since",
    "text",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: Log and event levels, lowest first (a `level` filter means "this level and above").
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_MAX_TEXT = 1024


def _bad(name: str, description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Invalid parameter", description=f"{name}: {description}")


def check_known(req: falcon.Request, allowed: Iterable[str]) -> None:
    """400 for a parameter the route does not take (a typo must not silently widen a query)."""
    unknown = sorted(set(req.params) - set(allowed))
    if unknown:
        names = ", ".join(repr(n[:64]) for n in unknown[:5])
        raise falcon.HTTPBadRequest(
            title="Unknown parameter",
            description=f"not a parameter of this route: {names}; it takes: {', '.join(sorted(allowed)) or 'none'}",
        )


def text(req: falcon.Request, name: str) -> str | None:
    """A single string value; None when absent; 400 when empty, repeated, oversized or not storable
    (SPEC section 6: a bad parameter, an empty one included, is a 400)."""
    value = req.params.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        raise _bad(name, "given more than once")
    if not value:
        raise _bad(name, "empty; leave the parameter out instead")
    problem = text_problem(value, _MAX_TEXT)
    if problem:
        raise _bad(name, problem)
    return value


def number(req: falcon.Request, name: str, *, minimum: float = 0.0, maximum: float = math.inf) -> float | None:
    """A finite number within [minimum, maximum], or None when absent."""
    raw = text(req, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, f"not a number: {raw[:64]!r}") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise _bad(name, f"must be between {minimum:g} and {maximum:g}")
    return value


def integer(req: falcon.Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer within [minimum, maximum]; `default` when absent."""
    raw = text(req, name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise _bad(name, f"not an integer: {raw[:64]!r}") from None
    if not minimum <= value <= maximum:
        raise _bad(name, f"must be between {minimum} and {maximum}")
    return value


def limit(req: falcon.Request) -> int:
    """`limit`: 1..10,000, default 100."""
    return integer(req, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)


def since(req: falcon.Request, name: str = "since") -> float | None:
    """`since`: RFC 3339 (with a zone) or Unix seconds, as Unix seconds."""
    raw = text(req, name)
    if raw is None:
        return None
    try:
        value = parse_since(raw)
    except (ValueError, OverflowError, OSError):
        raise _bad(name, f"expected RFC 3339 with a time zone or Unix seconds, got {raw[:64]!r}") from None
    if not math.isfinite(value):
        raise _bad(name, "must be a finite time")
    return value


def boolean(req: falcon.Request, name: str) -> bool | None:
    """true/false, 1/0, yes/no, on/off; None when absent."""
    raw = text(req, name)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _bad(name, f"expected true or false, got {raw[:64]!r}")


def cursor(req: falcon.Request) -> str | None:
    """`cursor`: the opaque `next` of a previous page (validated by the query side)."""
    return text(req, "cursor")


def level(req: falcon.Request) -> str | None:
    """`level`: one of debug, info, warning, error, critical (case-insensitive)."""
    raw = text(req, "level")
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered == "warn":
        lowered = "warning"
    if lowered not in LEVELS:
        raise _bad("level", f"expected one of {', '.join(LEVELS)}, got {raw[:64]!r}")
    return lowered
