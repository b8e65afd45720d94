"""Supervision policy value objects (SPEC section 5) and the built-in default.

Loading and validation of supervision.yaml live in `fieldwatch.config.supervision`;
this module only holds the frozen shapes so the supervisor does not depend on YAML.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fieldwatch.kinds import KINDS

__all__ = [
    "Backoff",
    "HealthCheck",
    "Intensity",
    "ChildPolicy",
    "SupervisorPolicy",
    "RootPolicy",
    "Batch",
    "Retry",
    "StoragePolicy",
    "SupervisionPolicy",
    "STRATEGIES",
    "RESTART_TYPES",
    "DEFAULT_POLICY",
    "default_policy",
    "backoff_delay",
]

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter, reset after stable running."""

    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.1
    reset_after_s: float = 120.0


def backoff_delay(policy: Backoff, attempt: int, rng: random.Random | None = None) -> float:
    """Capped exponential delay for the given attempt (0-based) with +-jitter (the one backoff function)."""
    base = min(policy.max_s, policy.initial_s * (policy.multiplier**attempt))
    jitter = (rng or random).uniform(-policy.jitter, policy.jitter) if policy.jitter else 0.0
    return max(0.0, min(policy.max_s * (1 + policy.jitter), base * (1 + jitter)))


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How often a supervisor asks a child for its health, and how patiently."""

    interval_s: float = 5.0
    timeout_s: float = 2.0
    failures: int = 2


@dataclass(frozen=True, slots=True)
class Intensity:
    """More than `max_restarts` restarts within `within_s` seconds fails the supervisor."""

    max_restarts: int = 10
    within_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ChildPolicy:
    """Per-child policy: restart type, backoff, health check, shutdown timeout."""

    restart: str = "permanent"
    backoff: Backoff = field(default_factory=Backoff)
    health_check: HealthCheck = field(default_factory=HealthCheck)
    shutdown_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """Strategy and intensity of one supervisor."""

    strategy: str = "one_for_one"
    intensity: Intensity = field(default_factory=Intensity)


@dataclass(frozen=True, slots=True)
class RootPolicy:
    """The root supervisor: like any supervisor, plus what to do when exhausted."""

    strategy: str = "one_for_one"
    intensity: Intensity = field(default_factory=Intensity)
    on_exhausted: str = "exit"


@dataclass(frozen=True, slots=True)
class Batch:
    """Write batching of the persistence actor."""

    max_rows: int = 1000
    max_delay_ms: int = 50


@dataclass(frozen=True, slots=True)
class Retry:
    """Backoff of failed commits."""

    initial_s: float = 0.1
    max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """The storage supervisor and its persistence actors."""

    strategy: str = "one_for_all"
    intensity: Intensity = field(default_factory=lambda: Intensity(10, 60.0))
    batch: Batch = field(default_factory=Batch)
    retry: Retry = field(default_factory=Retry)


def _merge(base: Any, override: Mapping[str, Any]) -> Any:
    """Return `base` (a dataclass) with the keys of `override` applied, recursively."""
    changes: dict[str, Any] = {}
    for key, value in override.items():
        current = getattr(base, key)
        if isinstance(value, Mapping) and hasattr(current, "__dataclass_fields__"):
            changes[key] = _merge(current, value)
        else:
            changes[key] = value
    return replace(base, **changes)


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """The whole supervision.yaml: root, endpoint defaults, sites, storage, per-kind overrides.

    `kinds` maps a kind name to a partial ChildPolicy as a plain nested mapping
    (only the keys given), applied over `defaults`; by default each registered kind's
    own (`KIND.supervision`, see fieldwatch/kinds.py), which supervision.yaml merges over.
    """

    root: RootPolicy = field(default_factory=lambda: RootPolicy(intensity=Intensity(10, 60.0)))
    defaults: ChildPolicy = field(default_factory=ChildPolicy)
    sites: SupervisorPolicy = field(default_factory=lambda: SupervisorPolicy(intensity=Intensity(20, 60.0)))
    storage: StoragePolicy = field(default_factory=StoragePolicy)
    kinds: Mapping[str, Mapping[str, Any]] = field(default_factory=KINDS.supervision_defaults)

    def for_endpoint(self, kind: str, override: Mapping[str, Any] | None = None) -> ChildPolicy:
        """The effective ChildPolicy of an endpoint: defaults, then its kind, then its own."""
        policy = self.defaults
        if kind in self.kinds:
            policy = _merge(policy, self.kinds[kind])
        if override:
            policy = _merge(policy, override)
        return policy


DEFAULT_POLICY = SupervisionPolicy()
"""The defaults with the kinds registered at import; `default_policy()` for the kinds registered now."""


def default_policy() -> SupervisionPolicy:
    """The default policy with the per-kind defaults of the kinds registered now (config loading uses it)."""
    kinds = KINDS.supervision_defaults()
    return DEFAULT_POLICY if kinds == DEFAULT_POLICY.kinds else replace(DEFAULT_POLICY, kinds=kinds)
