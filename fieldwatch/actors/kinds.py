"""The table of connection kinds: a new protocol is a new folder plus one line here."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ACTORS", "actor_class", "KINDS"]

#: kind -> "module:Class" of its ConnectionActor (imported lazily: an ICMP-only
#: daemon never imports the OPC UA library).
ACTORS: dict[str, str] = {
    "icmp": "fieldwatch.actors.icmp.actor:IcmpActor",
    "opcua": "fieldwatch.actors.opcua.actor:OpcuaActor",
    "mqtt": "fieldwatch.actors.mqtt.actor:MqttActor",
}

KINDS: tuple[str, ...] = tuple(ACTORS)


def actor_class(kind: str) -> Any:
    """The ConnectionActor subclass for `kind` (KeyError for an unknown kind)."""
    module_name, _, class_name = ACTORS[kind].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
