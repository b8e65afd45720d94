"""Messages about discovered MQTT topics, sent by the controller to an MQTT actor."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TopicSwitch"]


@dataclass(frozen=True, slots=True)
class TopicSwitch:
    """An operator switched processing of `topic` on or off (already stored)."""

    topic: str
    active: bool
