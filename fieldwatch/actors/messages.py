"""Typed messages between supervisors and their children."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "HEALTHY",
    "ChildExited",
    "HealthCheck",
    "HealthReport",
    "Health",
]


@dataclass(frozen=True, slots=True)
class Health:
    """A child's answer to a health check: ok, and why not when not ok."""

    ok: bool
    detail: str = ""


#: The healthy answer (immutable, so one instance serves every check).
HEALTHY = Health(True)


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Supervisor -> child: report your health to `reply_to` quoting `seq`."""

    seq: int
    reply_to: Any  # pykka.ActorRef of the supervisor


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Child -> supervisor: the answer to HealthCheck `seq`."""

    child_id: str
    generation: int
    seq: int
    health: Health


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Child -> supervisor: the child stopped (normally or by an exception).

    `generation` lets the supervisor ignore a replaced (abandoned) instance.
    """

    child_id: str
    generation: int
    normal: bool
    exc_type: str | None = None
    message: str = ""
