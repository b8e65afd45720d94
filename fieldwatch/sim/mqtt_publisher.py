"""A simulated MQTT site: a few devices publishing `sensors/<device>/<metric>` JSON readings.

Each tick publishes `{"value": x, "ts": <unix seconds>}` for every device and
metric (QoS 1).  One device goes silent after `silent_after_s`, so the demo
shows a device going offline; `malformed_every` > 0 adds a payload that is
not JSON every that many ticks, so the parse-error log has something in it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import threading
import time
from collections.abc import Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["SimulatedPublisher", "main"]

logger = logging.getLogger(__name__)


class SimulatedPublisher:
    """Publishes readings for `devices` x `metrics` every `interval_s` in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        devices: Sequence[str] = ("pump1", "tank1", "meter1"),
        metrics: Sequence[str] = ("temperature", "level"),
        interval_s: float = 1.0,
        silent_device: str | None = "meter1",
        silent_after_s: float | None = 60.0,
        malformed_every: int = 0,
        prefix: str = "sensors",
        qos: int = 1,
        seed: int | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.devices, self.metrics = tuple(devices), tuple(metrics)
        self.interval_s = interval_s
        self.silent_device, self.silent_after_s = silent_device, silent_after_s
        self.malformed_every = malformed_every
        self.prefix, self.qos = prefix, qos
        self.published = 0
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="")
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)  # a publisher may reconnect on its own

    def start(self) -> None:
        """Connect (retrying in the background) and start publishing."""
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-sim-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    def _value(self, device_index: int, metric_index: int, now: float) -> float:
        base = 20.0 + 10.0 * device_index + 5.0 * metric_index
        wave = 3.0 * math.sin(now / 60.0 + device_index + metric_index)
        return round(base + wave + self._random.uniform(-0.2, 0.2), 3)

    def _run(self) -> None:
        started = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            if not self._client.is_connected():
                # Nothing is sent before the CONNACK (the embedded amqtt broker rejects a
                # PUBLISH that arrives pipelined behind the CONNECT); paho reconnects itself.
                self._stop.wait(0.05)
                continue
            now = time.time()
            silent = (
                self.silent_device is not None
                and self.silent_after_s is not None
                and time.monotonic() - started >= self.silent_after_s
            )
            for d, device in enumerate(self.devices):
                if silent and device == self.silent_device:
                    continue
                for m, metric in enumerate(self.metrics):
                    payload = json.dumps({"value": self._value(d, m, now), "ts": round(now, 3)})
                    self._client.publish(f"{self.prefix}/{device}/{metric}", payload, qos=self.qos)
                    self.published += 1
            tick += 1
            if self.malformed_every and tick % self.malformed_every == 0 and self.devices:
                self._client.publish(f"{self.prefix}/{self.devices[0]}/{self.metrics[0]}", "{broken", qos=self.qos)
            self._stop.wait(self.interval_s)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m fieldwatch.sim.mqtt_publisher --port 1883`: publish until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--silent-after", type=float, default=60.0)
    parser.add_argument("--malformed-every", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    publisher = SimulatedPublisher(
        args.host,
        args.port,
        interval_s=args.interval,
        silent_after_s=args.silent_after,
        malformed_every=args.malformed_every,
    )
    publisher.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        publisher.stop()


if __name__ == "__main__":
    main()
