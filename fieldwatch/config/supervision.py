"""Loading and validation of supervision.yaml into a `fieldwatch.policy.SupervisionPolicy`.

Every key is optional: what a file leaves out keeps the built-in default
(`DEFAULT_POLICY`). Values are checked as Erlang/OTP checks supervisor flags
(known strategy and restart type, integer max_restarts >= 0, period > 0,
shutdown timeout >= 0) plus the backoff, health-check and storage rules.
Per-kind and per-endpoint overrides are kept as plain nested dicts of the
keys given, merged by `SupervisionPolicy.for_endpoint`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fieldwatch.errors import ConfigError
from fieldwatch.kinds import KINDS
from fieldwatch.policy import (
    RESTART_TYPES,
    STRATEGIES,
    ChildPolicy,
    SupervisionPolicy,
    default_policy,
)
from fieldwatch.schema.dsl import (
    INVALID,
    Ctx,
    Float,
    Int,
    MapOf,
    Obj,
    Schema,
    Str,
)
from fieldwatch.schema.nodes import Node, PathT, compose, sort_errors

__all__ = [
    "CHILD_OVERRIDE",
    "load_supervision",
    "parse_supervision",
    "parse_supervision_text",
    "validate_endpoint_override",
]

_STRATEGY = Str(choices=STRATEGIES)
_INTENSITY = Obj(None, {"max_restarts": Int(ge=0), "within_s": Float(gt=0)})
_BACKOFF = Obj(None, {
    "initial_s": Float(gt=0),
    "max_s": Float(gt=0),
    "multiplier": Float(ge=1),
    "jitter": Float(ge=0, lt=1),
    "reset_after_s": Float(ge=0),
})
_HEALTH = Obj(None, {"interval_s": Float(gt=0), "timeout_s": Float(gt=0), "failures": Int(ge=1)})

CHILD_OVERRIDE = Obj(None, {
    "restart": Str(choices=RESTART_TYPES),
    "backoff": _BACKOFF,
    "health_check": _HEALTH,
    "shutdown_timeout_s": Float(ge=0),
})
"""A partial ChildPolicy (`defaults`, a `kinds` entry, an endpoint's `supervision:`) as a dict."""

_ROOT = Obj(None, {
    "strategy": _STRATEGY,
    "intensity": _INTENSITY,
    "on_exhausted": Str(choices=("exit", "restart")),
})
_SITES = Obj(None, {"strategy": _STRATEGY, "intensity": _INTENSITY})
_STORAGE = Obj(None, {
    "strategy": _STRATEGY,
    "intensity": _INTENSITY,
    "batch": Obj(None, {"max_rows": Int(ge=1), "max_delay_ms": Int(ge=0)}),
    "retry": Obj(None, {"initial_s": Float(gt=0), "max_s": Float(gt=0)}),
})


def _file_schema() -> Obj:
    return Obj(None, {
        "root": _ROOT,
        "defaults": CHILD_OVERRIDE,
        "sites": _SITES,
        "storage": _STORAGE,
        "kinds": MapOf(CHILD_OVERRIDE, keys=KINDS.names()),
    })


def _apply(base: Any, partial: Mapping[str, Any]) -> Any:
    """`base` (a policy dataclass) with the keys of `partial` applied, recursively."""
    changes = {
        key: _apply(getattr(base, key), value) if isinstance(value, Mapping) else value
        for key, value in partial.items()
    }
    return replace(base, **changes)


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _child(node: Node | None, key: str) -> Node | None:
    if node is None or not isinstance(node.value, dict):
        return None
    sub = node.value.get(key)
    return sub if isinstance(sub, Node) else None


def _check_range(section: Node | None, ctx: Ctx, path: PathT, initial: float, maximum: float) -> bool:
    """Report `max_s < initial_s` at whichever of the two `section` writes; True when fine."""
    if maximum >= initial:
        return True
    given = [k for k in ("max_s", "initial_s") if _child(section, k) is not None]
    if not given or section is None:
        return True  # neither key written here: reported where they are
    line = section.value[given[0]].line
    ctx.error(line, (*path, given[0]),
              f"max_s ({maximum:g}) must be >= initial_s ({initial:g})")
    return False


def _check_child(node: Node | None, ctx: Ctx, path: PathT, effective: ChildPolicy) -> bool:
    """Cross-key rules of an effective child policy, reported at the override's lines."""
    backoff = effective.backoff
    return _check_range(_child(node, "backoff"), ctx, (*path, "backoff"),
                        backoff.initial_s, backoff.max_s)


def _salvage(schema: Schema, node: Node) -> Any:
    """The valid parts of a partial mapping (errors already reported elsewhere), else INVALID."""
    value = schema.validate(node, Ctx("", ""), ())
    if value is not INVALID or not isinstance(node.value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in node.value.items():
        if isinstance(schema, Obj) and key in schema.fields:
            part = _salvage(schema.fields[key].schema, sub)
        elif isinstance(schema, MapOf) and (schema.keys is None or key in schema.keys):
            part = _salvage(schema.value, sub)
        else:
            continue
        if part is not INVALID:
            out[key] = part
    return out if isinstance(schema, (Obj, MapOf)) else INVALID


def _parse_into(node: Node | None, ctx: Ctx) -> SupervisionPolicy:
    """Validate a supervision.yaml tree, recording errors in `ctx`; returns the merged policy."""
    if node is None:
        return default_policy()
    data = _file_schema().validate(node, ctx, ())
    if data is INVALID:
        # Keep every part that is valid on its own, so cross-key checks still run there.
        data = _salvage(_file_schema(), node)
        if data is INVALID:
            return default_policy()
    policy = default_policy()
    for key in ("root", "defaults", "sites", "storage"):
        if key in data:
            policy = replace(policy, **{key: _apply(getattr(policy, key), data[key])})
    if "kinds" in data:
        policy = replace(policy, kinds=_deep_merge(policy.kinds, data["kinds"]))
    _check_child(_child(node, "defaults"), ctx, ("defaults",), policy.defaults)
    kinds_node = _child(node, "kinds")
    for kind in data.get("kinds", {}):
        _check_child(_child(kinds_node, kind), ctx, ("kinds", kind), policy.for_endpoint(kind))
    retry = policy.storage.retry
    _check_range(_child(_child(node, "storage"), "retry"), ctx, ("storage", "retry"),
                 retry.initial_s, retry.max_s)
    return policy


def validate_endpoint_override(node: Node, ctx: Ctx, path: PathT, policy: SupervisionPolicy,
                               kind: str | None) -> Any:
    """Validate an endpoint's `supervision:` mapping; returns the partial dict or INVALID."""
    override = CHILD_OVERRIDE.validate(node, ctx, path)
    if override is INVALID:
        return INVALID
    effective = policy.for_endpoint(kind or "", override)
    return override if _check_child(node, ctx, path, effective) else INVALID


def parse_supervision(node: Node | None, filename: str, base_dir: str | None = None) -> SupervisionPolicy:
    """Validate a composed supervision.yaml (`Node` tree, None for an empty file).

    Raises ConfigError with every problem found.
    """
    ctx = Ctx(filename, base_dir or os.path.dirname(os.path.abspath(filename)))
    policy = _parse_into(node, ctx)
    if ctx.errors:
        raise ConfigError(sort_errors(ctx.errors, filename))
    return policy


def parse_supervision_text(text: str, filename: str,
                           env: Mapping[str, str] | None = None) -> SupervisionPolicy:
    """Parse and validate supervision.yaml text; raises ConfigError."""
    node, errors = compose(text, filename, os.environ if env is None else env)
    if errors:
        ctx = Ctx(filename, ".", errors)
        _parse_into(node, ctx)
        raise ConfigError(sort_errors(ctx.errors, filename))
    return parse_supervision(node, filename)


def load_supervision(path: str | os.PathLike[str],
                     env: Mapping[str, str] | None = None) -> SupervisionPolicy:
    """Read, validate and merge a supervision.yaml over the built-in defaults."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{filename}: cannot read: {err}"]) from err
    return parse_supervision_text(text, filename, env)
