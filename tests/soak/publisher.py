"""The soak's MQTT publisher: numbered QoS 1 messages, each identifiable, with every PUBACK recorded.

Message n goes to `soak/dev<n % devices>/seq` as `{"value": n, "ts": <unix s>}`.
A message counts as acknowledged only once paho reports its PUBACK
(the `MQTTMessageInfo` published flag); paho keeps unacknowledged QoS 1 messages
and resends them after it reconnects on its own (the broker may be killed).
`quiesce()` stops publishing until every message in flight is acknowledged,
then publishes a retained marker: Mosquitto saves its persistence file after
it, so a broker SIGKILLed once `marker_saved()` holds loses no acknowledged message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.waiting import wait_for

__all__ = ["SeqPublisher", "publish_raw"]


class SeqPublisher:
    """Publishes `rate_hz` numbered messages per second in a thread until stopped."""

    def __init__(self, port: int, *, devices: int = 4, rate_hz: float = 20.0, prefix: str = "soak") -> None:
        self.port, self.devices, self.rate_hz, self.prefix = port, devices, rate_hz, prefix
        self.acked: dict[int, float] = {}  # seq -> when its PUBACK was seen
        self.published = 0
        self._inflight: dict[int, paho.MQTTMessageInfo] = {}
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="soak-publisher", clean_session=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)

    def start(self) -> None:
        """Connect in the background (paho reconnects on its own) and start publishing."""
        self._client.connect_async("127.0.0.1", self.port, keepalive=60)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="soak-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        due = time.monotonic()
        seq = 0
        while not self._stop.is_set():
            due += period
            if not self._paused.is_set():
                payload = json.dumps({"value": seq, "ts": round(time.time(), 3)})
                info = self._client.publish(f"{self.prefix}/dev{seq % self.devices}/seq", payload, qos=1)
                with self._lock:
                    self._inflight[seq] = info
                    self.published += 1
                seq += 1
            self.collect()
            self._stop.wait(max(0.0, due - time.monotonic()))
            if time.monotonic() - due > 1.0:  # paused or starved: keep the rate, do not burst to catch up
                due = time.monotonic()

    def collect(self) -> int:
        """Move acknowledged messages from in flight to `acked`; how many are still in flight."""
        now = time.time()
        with self._lock:
            done = [seq for seq, info in self._inflight.items() if _acked(info)]
            for seq in done:
                del self._inflight[seq]
                self.acked[seq] = now
            return len(self._inflight)

    @property
    def inflight(self) -> int:
        """Messages published and not yet acknowledged."""
        return self.collect()

    def quiesce(self, broker_dir: Path, timeout_s: float = 15.0) -> bool:
        """Pause; wait for every PUBACK; publish a retained marker and wait until the broker saved after it."""
        self._paused.set()
        if not _poll(lambda: self.collect() == 0, timeout_s):
            return False
        marker_at = time.time()
        info = self._client.publish(f"{self.prefix}-marker", str(marker_at), qos=1, retain=True)
        db = broker_dir / "data" / "mosquitto.db"
        return _poll(lambda: _acked(info) and db.exists() and db.stat().st_mtime > marker_at, timeout_s)

    def resume(self) -> None:
        """Publish again after quiesce()."""
        self._paused.clear()

    def stop(self, timeout_s: float = 30.0) -> int:
        """Stop publishing, wait (bounded) for the last PUBACKs, disconnect; messages left unacknowledged."""
        self._paused.set()
        _poll(lambda: self.collect() == 0, timeout_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        left = self.collect()
        self._client.disconnect()
        self._client.loop_stop()
        return left


def publish_raw(port: int, items: list[tuple[str, bytes]], timeout_s: float = 20.0) -> int:
    """Publish raw payloads (QoS 1) with a throw-away client; how many were acknowledged."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
        _poll(lambda: all(_acked(i) for i in infos), timeout_s)
        return sum(1 for i in infos if _acked(i))
    finally:
        client.disconnect()
        client.loop_stop()


def _acked(info: paho.MQTTMessageInfo) -> bool:
    """Whether the PUBACK came. `is_published()` raises for a message queued while disconnected
    (rc NO_CONN) although paho sends it after reconnecting, so read the flag itself."""
    return bool(getattr(info, "_published", False))


def _poll(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `predicate` held within `timeout_s` (the soak records a miss, it does not fail on it)."""
    try:
        wait_for(predicate, timeout_s)
    except AssertionError:
        return False
    return True
