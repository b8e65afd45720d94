"""The registry of connection kinds: a new protocol is a new folder (with its `kind.py`) plus one line here.

`docs/INTERNALS.md` ("Add a protocol") and `tests/test_add_protocol.py` show a whole kind.
"""

from __future__ import annotations

from fieldwatch.actors.icmp import kind as icmp
from fieldwatch.actors.mqtt import kind as mqtt
from fieldwatch.actors.opcua import kind as opcua
from fieldwatch.protocol import Kind, Registry

__all__ = ["KINDS", "Kind", "Registry"]

KINDS = Registry(
    icmp.KIND,
    opcua.KIND,
    mqtt.KIND,
)
