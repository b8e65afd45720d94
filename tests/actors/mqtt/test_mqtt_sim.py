"""The demo broker (Mosquitto or embedded amqtt) and the simulated publisher."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from fieldwatch.sim import mqtt_broker
from fieldwatch.sim.mqtt_broker import start_broker
from fieldwatch.sim.mqtt_publisher import SimulatedPublisher
from tests.actors.mqtt.mqtt_helpers import Recorder
from tests.mosquitto import free_port


def _port_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("hide_mosquitto", [False, True])
def test_demo_broker_and_publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hide_mosquitto: bool) -> None:
    if hide_mosquitto:
        monkeypatch.setattr(mqtt_broker, "find_mosquitto", lambda: None)
    elif mqtt_broker.find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    handle = start_broker(port, tmp_path)
    assert handle.kind == ("amqtt" if hide_mosquitto else "mosquitto")
    rec = Recorder()
    client = rec.client(port, keepalive_s=10)
    client.subscribe(["sensors/#"], qos=1)
    publisher = SimulatedPublisher("127.0.0.1", port, devices=("a", "b"), metrics=("t",), interval_s=0.05,
                                   silent_device="b", silent_after_s=0.5, seed=1)
    try:
        client.start()
        rec.wait_for(lambda: bool(rec.connects))
        assert rec.connects[0][0] == 0
        publisher.start()
        rec.wait_for(lambda: sum(m.topic == "sensors/a/t" for m in rec.messages) >= 30, timeout_s=15)
        for message in rec.messages:
            client.ack(message.mid, message.qos)
        last_b = max(m.at for m in rec.messages if m.topic == "sensors/b/t")
        later_a = [m for m in rec.messages if m.topic == "sensors/a/t" and m.at > last_b + 0.3]
        assert later_a, "device b should have gone silent while a kept publishing"
        body = json.loads(rec.messages[-1].payload)
        assert set(body) == {"value", "ts"}
    finally:
        publisher.stop()
        client.stop()
        handle.stop()
    assert _port_closed(port)
    handle.stop()  # idempotent
