"""MQTT numbered QoS 1 messages across a failover (SPEC section 10): nothing lost.

Two `fieldwatch run` instances share one MQTT site (one client_id, a persistent session,
`id_field: seq`) on a private Mosquitto broker. A publisher sends numbered QoS 1 messages
without pause; the owner is killed (SIGKILL) or frozen (SIGSTOP, then SIGCONT once the
other took over). Every number must be stored; duplicates are counted and reported (with
an identity they are suppressed by the writer, so rows == distinct numbers).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg2
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.cluster.daemon_cluster import Instance, stop_all, storage_url
from tests.e2e.daemon_proc import DaemonProc
from tests.mosquitto import MosquittoBroker, mosquitto_binary
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")

TTL = 5.0
MESSAGES = 3000
RATE_HZ = 200.0  # about 15 s of messages: the failover happens in the middle


def config_yaml(name: str, url: str, port: int, client_id: str) -> str:
    return f"""\
instance: {name}
storage: {{url: "{url}"}}
http: {{listen: "127.0.0.1:@PORT@", token: "${{FIELDWATCH_TOKEN}}"}}
logging: {{file: '@DIR@/fieldwatch.log', level: info}}
cluster: {{lease_ttl_s: {TTL}}}
sites:
  - name: m
    endpoints:
      - name: mq
        kind: mqtt
        host: 127.0.0.1
        port: {port}
        client_id: {client_id}
        keepalive_s: 5
        qos: 1
        topics: ["load/#"]
        parsers:
          - match: "load/+device/+metric"
            format: json
            value: "$.seq"
            id_field: seq
        offline_after_s: 300
"""


class MqttInstance(Instance):
    def __init__(self, workdir: str, name: str, url: str, port: int, client_id: str) -> None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        DaemonProc.__init__(self, workdir, config_yaml(name, url, port, client_id))
        self.name = name
        self.frozen = False


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "broker").start()
    yield b
    b.kill()


@pytest.fixture()
def pair(pg_schema: tuple[str, str], tmp_path: Path, broker: MosquittoBroker) -> Iterator[list[MqttInstance]]:
    dsn, schema = pg_schema
    url = storage_url(dsn, schema)
    instances: list[MqttInstance] = []
    try:
        for name in ("a", "b"):
            inst = MqttInstance(str(tmp_path / name), name, url, broker.port, f"fw-ha-{schema}")
            instances.append(inst)
            inst.start(timeout=60)
        yield instances
    finally:
        stop_all(instances)


def stored(cur: Any) -> tuple[int, int]:
    """(rows, distinct numbers) of the numbered messages."""
    cur.execute("SELECT count(*), count(DISTINCT value_num) FROM reading WHERE name = 'seq' AND value_num >= 0")
    rows, distinct = cur.fetchone()
    return int(rows), int(distinct)


def publish(port: int, count: int, sent: list[int], done: threading.Event) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="ha-publisher")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    start = time.monotonic()
    for i in range(count):
        infos.append(client.publish(f"load/dev{i % 3}/seq", json.dumps({"seq": i}), qos=1))
        sent.append(i)
        delay = start + (i + 1) / RATE_HZ - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the publisher, not synchronising the test
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    done.set()


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_numbered_qos1_messages_survive_a_failover(
    pair: list[MqttInstance], pg_schema: tuple[str, str], broker: MosquittoBroker, fault: str
) -> None:
    dsn, schema = pg_schema

    def owner() -> MqttInstance | None:
        for inst in pair:
            if not inst.frozen and inst.proc is not None and inst.proc.poll() is None:
                if "m" in inst.owned() and "m" in inst.running() and inst.endpoint("m", "mq")["state"] == "up":
                    return inst
        return None

    first = wait_for(owner, 6 * TTL, interval=0.2, what="the MQTT site up on one instance")
    other = next(i for i in pair if i is not first)
    conn = psycopg2.connect(dsn, options=f"-csearch_path={schema}", application_name=f"test-{schema}")
    conn.autocommit = True
    sent: list[int] = []
    done = threading.Event()
    publisher = threading.Thread(target=publish, args=(broker.port, MESSAGES, sent, done), daemon=True)
    try:
        with conn.cursor() as cur:
            # the persistent session's subscription is in place once a probe is stored
            probe = paho.Client(CallbackAPIVersion.VERSION2)
            probe.connect("127.0.0.1", broker.port)

            def probe_stored() -> bool:
                probe.publish("load/probe/seq", json.dumps({"seq": -1}), qos=1)
                probe.loop(0.05)
                cur.execute("SELECT count(*) FROM reading WHERE name = 'seq' AND value_num = -1")
                return bool(cur.fetchone()[0])

            wait_for(probe_stored, 30, interval=0.2, what="a probe stored")
            probe.disconnect()
            publisher.start()
            wait_for(lambda: stored(cur)[1] >= MESSAGES // 4, 60, interval=0.05, what="a quarter stored")
            at = time.monotonic()
            if fault == "kill":
                first.kill()
            else:
                first.frozen = True
                first.signal(signal.SIGSTOP)
            wait_for(lambda: owner() is other, TTL + 15, interval=0.1, what="the site up on the other instance")
            print(f"{fault}: MQTT site up on the other instance after {time.monotonic() - at:.2f}s")
            if fault == "freeze":
                first.signal(signal.SIGCONT)
                first.frozen = False
            assert done.wait(120), "the publisher did not finish"
            wait_for(lambda: stored(cur)[1] >= MESSAGES, 90, interval=0.2, what="every message stored")
            rows, distinct = stored(cur)
            cur.execute(
                "SELECT count(*) FROM generate_series(0, %s - 1) n WHERE NOT EXISTS "
                "(SELECT 1 FROM reading WHERE name = 'seq' AND value_num = n)",
                (MESSAGES,),
            )
            lost = int(cur.fetchone()[0])
            print(f"{fault}: {MESSAGES} sent, {distinct} stored, {lost} lost, {rows - distinct} duplicate rows")
            assert lost == 0 and distinct == MESSAGES
            assert rows == distinct, f"{rows - distinct} duplicate rows despite id_field"
    finally:
        conn.close()
