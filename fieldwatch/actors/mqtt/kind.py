"""The mqtt kind: subscribe topics on a broker; messages counted by outcome, devices in the endpoint view."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from fieldwatch.actors.mqtt.schema import SCHEMA, MqttOptions
from fieldwatch.families import counter_family
from fieldwatch.protocol import DEFAULT_CONDITIONS, Kind

__all__ = ["KIND"]


def _devices(queries: ModuleType, endpoint_id: int) -> dict[str, Any]:
    return {"devices": queries.devices(endpoint_id)}


KIND = Kind(
    name="mqtt",
    options=MqttOptions,
    schema=SCHEMA,
    actor="fieldwatch.actors.mqtt.actor:MqttActor",
    metrics=(
        counter_family(
            "fieldwatch_mqtt_messages",
            "MQTT messages received, by outcome.",
            "mqtt_messages",
            ("stored", "duplicate", "parse_error", "ignored"),
        ),
    ),  # fmt: skip
    alert_conditions=(*DEFAULT_CONDITIONS, "offline"),
    reading="MQTT reading",
    view_extras=_devices,
    has_topics=True,
    loggers={"paho": "warning", "amqtt": "warning"},
)
