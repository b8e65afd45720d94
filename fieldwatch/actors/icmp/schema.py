"""Config schema of `kind: icmp` endpoints (the options class lives in fieldwatch.config.model)."""

from __future__ import annotations

from fieldwatch.config._schema import Checker, Field, Float, Int, Obj, Str
from fieldwatch.config.model import IcmpOptions

__all__ = ["IcmpOptions", "SCHEMA"]


_DEFAULT_TIMEOUT_S = 1.0


def _timeout_within_interval(chk: Checker) -> None:
    """SPEC section 3 (Prometheus's rule): timeout_s <= interval_s; default min(1, interval_s)."""
    if not chk.has("interval_s"):
        return
    interval = chk.values["interval_s"]
    if not chk.given("timeout_s"):
        chk.derive("timeout_s", min(_DEFAULT_TIMEOUT_S, interval))
    elif chk.has("timeout_s") and chk.values["timeout_s"] > interval:
        chk.fail("timeout_s", f"timeout_s ({chk.values['timeout_s']:g}) must not exceed "
                              f"interval_s ({interval:g})")


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
