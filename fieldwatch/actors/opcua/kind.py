"""The opcua kind: poll or subscribe nodes of an OPC UA server; node reads counted by outcome."""

from __future__ import annotations

from fieldwatch.actors.opcua.schema import SCHEMA, OpcuaOptions
from fieldwatch.families import counter_family
from fieldwatch.protocol import DEFAULT_CONDITIONS, Kind

__all__ = ["KIND"]

KIND = Kind(
    name="opcua",
    options=OpcuaOptions,
    schema=SCHEMA,
    actor="fieldwatch.actors.opcua.actor:OpcuaActor",
    metrics=(
        counter_family(
            "fieldwatch_opcua_reads", "OPC UA node reads, by outcome.", "opcua_reads", ("ok", "bad_status", "error")
        ),
    ),
    alert_conditions=(*DEFAULT_CONDITIONS, "threshold"),
    reading="OPC UA node",
    supervision={"backoff": {"max_s": 30.0}},
    shared="fieldwatch.actors.opcua.loop:stop_shared_loop",
    # asyncua logs errors on every failed connect and lost session; the actor reports
    # each failure once through its state, events and alerts instead.
    loggers={"asyncua": "quiet"},
)
