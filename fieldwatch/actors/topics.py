"""Messages about discovered topics, sent by the controller to the actor of an endpoint that has topics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TopicSwitch"]


@dataclass(frozen=True, slots=True)
class TopicSwitch:
    """An operator switched processing of `topic` on or off (already stored)."""

    topic: str
    active: bool
