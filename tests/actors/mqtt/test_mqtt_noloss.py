"""Issue 7 acceptance: SIGKILL fieldwatch twice while 20,000 QoS 1 messages arrive; each is stored once.

The messages carry an identity (`id_field: seq`), so a message committed just before a kill and
redelivered after it is stored once (SPEC §3); without one it may be stored twice, never lost
(tests/peers/mqtt covers that case on every broker).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.mosquitto import MosquittoBroker, free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
MESSAGES = 20_000

CONFIG = """\
storage:
  url: sqlite:///{db}
http:
  listen: 127.0.0.1:{http_port}
logging:
  file: {log}
  level: info
sites:
  - name: s1
    endpoints:
      - name: mq
        kind: mqtt
        host: 127.0.0.1
        port: {port}
        client_id: fw-noloss
        keepalive_s: 10
        qos: 1
        topics: ["load/#"]
        parsers:
          - match: "load/+device/+metric"
            format: json
            value: "$.seq"
            id_field: seq                 # an identity: a redelivery after the kill is stored once
        offline_after_s: 300
"""


class Fieldwatch:
    """`fieldwatch run` as a child process that the test can SIGKILL and start again."""

    def __init__(self, config: Path, http_port: int) -> None:
        self.config, self.http_port = config, http_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "fieldwatch", "run", "--config", str(self.config)],
                                     cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def state(self) -> str | None:
        try:
            url = f"http://127.0.0.1:{self.http_port}/api/v1/endpoints/s1/mq"
            with urllib.request.urlopen(url, timeout=1) as response:
                return str(json.load(response)["state"])
        except OSError:
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def fieldwatch(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Callable[[], Fieldwatch]]:
    made: list[Fieldwatch] = []

    def make() -> Fieldwatch:
        http_port = free_port()
        config = tmp_path / "fieldwatch.yaml"
        config.write_text(CONFIG.format(db=tmp_path / "fw.db", http_port=http_port, log=tmp_path / "fw.log",
                                        port=broker.port))
        made.append(Fieldwatch(config, http_port))
        return made[-1]

    yield make
    for fw in made:
        fw.kill()


def _stored(db: Path) -> tuple[int, int]:
    """(rows, distinct sequence numbers) of the load readings."""
    if not db.exists():
        return 0, 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT value_num) FROM reading "
                           "WHERE name = 'seq' AND value_num >= 0").fetchone()
    return int(row[0]), int(row[1])


def _publish_numbered(port: int, count: int, done: threading.Event) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="noloss-publisher")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(f"load/dev{i % 5}/seq", json.dumps({"seq": i}), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    done.set()


def test_sigkill_twice_loses_nothing_and_stores_each_message_once(
    broker: MosquittoBroker, fieldwatch: Callable[[], Fieldwatch], tmp_path: Path
) -> None:
    db = tmp_path / "fw.db"
    fw = fieldwatch()
    fw.start()
    wait_for(lambda: fw.state() == "up", 20, interval=0.1, what="fieldwatch up")
    # the persistent session's subscription is in place once a probe is stored
    probe = paho.Client(CallbackAPIVersion.VERSION2)
    probe.connect("127.0.0.1", broker.port)

    def probe_stored() -> bool:
        probe.publish("load/probe/seq", json.dumps({"seq": -1, "t": time.time()}), qos=1)
        probe.loop(0.05)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return bool(conn.execute("SELECT count(*) FROM reading WHERE value_num = -1").fetchone()[0])

    wait_for(probe_stored, 20, interval=0.2, what="a probe stored")
    probe.disconnect()

    done = threading.Event()
    publisher = threading.Thread(target=_publish_numbered, args=(broker.port, MESSAGES, done), daemon=True)
    publisher.start()
    for threshold in (MESSAGES // 5, MESSAGES // 2):
        wait_for(lambda t=threshold: _stored(db)[1] >= t, 60, interval=0.05, what=f"{threshold} stored")  # type: ignore[misc]
        fw.kill()  # SIGKILL at an arbitrary point of the stream
        fw.start()
        wait_for(lambda: fw.state() is not None, 20, interval=0.1, what="fieldwatch restarted")
    assert done.wait(120), "the publisher did not finish"
    wait_for(lambda: _stored(db)[1] == MESSAGES, 90, interval=0.2, what="every message stored")
    time.sleep(0.5)  # let late redeliveries land: they must not add rows
    rows, distinct = _stored(db)
    assert (rows, distinct) == (MESSAGES, MESSAGES)
