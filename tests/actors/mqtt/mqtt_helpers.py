"""Helpers for MQTT tests: a callback recorder and a publisher."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from fieldwatch.actors.mqtt.client import MqttClient
from tests.waiting import wait_for


@dataclass
class Received:
    """One on_message call."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool
    at: float


@dataclass
class Recorder:
    """Collects MqttClient callbacks; wait_for() polls a condition with a deadline."""

    connects: list[tuple[int, str, float]] = field(default_factory=list)
    disconnects: list[tuple[int, str, float]] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    subscribed: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def on_connect(self, code: int, reason: str) -> None:
        with self.cond:
            self.connects.append((code, reason, time.monotonic()))
            self.cond.notify_all()

    def on_disconnect(self, code: int, reason: str) -> None:
        with self.cond:
            self.disconnects.append((code, reason, time.monotonic()))
            self.cond.notify_all()

    def on_message(self, topic: str, payload: bytes, qos: int, mid: int, dup: bool) -> None:
        with self.cond:
            self.messages.append(Received(topic, payload, qos, mid, dup, time.monotonic()))
            self.cond.notify_all()

    def on_subscribed(self, topics: list[str]) -> None:
        with self.cond:
            self.subscribed.extend(topics)
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Block until predicate() holds; AssertionError after timeout_s."""
        try:
            wait_for(predicate, timeout_s, cond=self.cond)
        except AssertionError as err:
            raise AssertionError(f"{err}: {self!r}"[:2000]) from None

    def client(self, port: int, **options: Any) -> MqttClient:
        """An MqttClient wired to this recorder (defaults: anonymous, keepalive 5)."""
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "client_id": None,
            "clean_session": True,
            "username": None,
            "password": None,
            "tls": None,
            "keepalive_s": 5,
        }
        settings.update(options)
        return MqttClient(
            on_connect=self.on_connect,
            on_disconnect=self.on_disconnect,
            on_message=self.on_message,
            on_subscribed=self.on_subscribed,
            **settings,
        )


def publish(port: int, messages: Iterable[tuple[str, bytes]], qos: int = 1, timeout_s: float = 10.0) -> None:
    """Publish messages from a throwaway paho client and wait until the broker has each."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise AssertionError("publish not confirmed by the broker")
    finally:
        client.disconnect()
        client.loop_stop()

