"""The endpoint kinds: kind name -> option schema. A new protocol is a folder plus one line."""

from __future__ import annotations

from fieldwatch.actors.icmp import schema as icmp
from fieldwatch.actors.mqtt import schema as mqtt
from fieldwatch.actors.opcua import schema as opcua
from fieldwatch.config._schema import Obj

__all__ = ["KINDS", "OPTION_SCHEMAS"]

OPTION_SCHEMAS: dict[str, Obj] = {
    "icmp": icmp.SCHEMA,
    "opcua": opcua.SCHEMA,
    "mqtt": mqtt.SCHEMA,
}
"""Each kind's schema validates the kind-specific keys of an endpoint mapping."""

KINDS: tuple[str, ...] = tuple(OPTION_SCHEMAS)
"""The known endpoint kinds, in table order."""
