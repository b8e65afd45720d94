"""Config schema of `kind: icmp` endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from fieldwatch.schema.dsl import Checker, Field, Float, Int, Obj, Str

__all__ = ["IcmpOptions", "SCHEMA"]


@dataclass(frozen=True, slots=True)
class IcmpOptions:
    """Ping `host` every `interval_s`; DOWN after `down_after` failed probes in a row."""

    host: str
    interval_s: float = 10.0
    timeout_s: float = 1.0
    count: int = 1
    down_after: int = 2
    up_after: int = 1


_DEFAULT_TIMEOUT_S = 1.0


def _timeout_within_interval(chk: Checker) -> None:
    """SPEC section 3 (Prometheus's rule): timeout_s <= interval_s; default min(1, interval_s)."""
    if not chk.has("interval_s"):
        return
    interval = chk.values["interval_s"]
    if not chk.given("timeout_s"):
        chk.derive("timeout_s", min(_DEFAULT_TIMEOUT_S, interval))
    elif chk.has("timeout_s") and chk.values["timeout_s"] > interval:
        chk.fail("timeout_s", f"timeout_s ({chk.values['timeout_s']:g}) must not exceed interval_s ({interval:g})")


SCHEMA = Obj(
    IcmpOptions,
    {
        "host": Field(Str(pattern=r"^[^\s/]+$"), required=True),
        "interval_s": Float(gt=0),
        "timeout_s": Float(gt=0),
        "count": Int(ge=1),
        "down_after": Int(ge=1),
        "up_after": Int(ge=1),
    },
    checks=[_timeout_within_interval],
)
"""Validates the icmp keys of an endpoint mapping into IcmpOptions."""
