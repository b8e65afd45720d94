"""Config schema of `kind: icmp` endpoints (the options class lives in fieldwatch.config.model)."""

from __future__ import annotations

from fieldwatch.config._schema import Checker, Field, Float, Int, Obj, Str
from fieldwatch.config.model import IcmpOptions

__all__ = ["IcmpOptions", "SCHEMA"]


def _timeout_below_interval(chk: Checker) -> None:
    if chk.has("timeout_s", "interval_s") and chk.values["timeout_s"] >= chk.values["interval_s"]:
        key = "timeout_s" if chk.given("timeout_s") else "interval_s"
        chk.fail(key, f"timeout_s ({chk.values['timeout_s']:g}) must be less than "
                      f"interval_s ({chk.values['interval_s']:g})")


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
    checks=[_timeout_below_interval],
)
"""Validates the icmp keys of an endpoint mapping into IcmpOptions."""
