"""Issue 13, MQTT: against Mosquitto (TLS + password), NATS's MQTT gateway, aedes and RabbitMQ's MQTT plugin.

fieldwatch runs as a real `fieldwatch run` process (tests/e2e/daemon_proc.py); counters are
read through its real /metrics, readings through its API, rows straight from its SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon_proc import DaemonProc
from tests.peers.mqtt.mqtt_peer import SITE, PeerBroker, broker_endpoint, counter, publish, readings, site_yaml

PEERS = ("mosquitto", "nats-server", "aedes", "rabbitmq")


def peers(case: str) -> list[Any]:
    """One parameter per broker, each marked for the peer matrix with this case."""
    return [pytest.param(name, id=name, marks=pytest.mark.peer(protocol="mqtt", peer=name, case=case))
            for name in PEERS]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[str], DaemonProc]]:
    made: list[DaemonProc] = []

    def make(config: str) -> DaemonProc:
        made.append(DaemonProc(str(tmp_path), config).start())
        return made[-1]

    yield make
    for proc in made:
        proc.kill()


def _rows(db: Path, name: str | None = None) -> tuple[int, int]:
    """(rows, distinct values) of the endpoint's readings (`name` only, if given), from the SQLite file."""
    if not db.exists():
        return 0, 0
    sql = "SELECT count(*), count(DISTINCT value_num) FROM reading"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute(sql + (" WHERE name = ?" if name else ""), (name,) if name else ()).fetchone()
    return int(row[0]), int(row[1])


def _prime(d: DaemonProc, broker: PeerBroker) -> None:
    """Publish probes until one is stored: the session's subscription is in place from then on."""
    d.wait_state(SITE, "mq", "up", 30)

    sent = 0

    def stored() -> bool:
        nonlocal sent
        publish(broker, [(f"peer{broker.tag}/probe/probe", b'{"value": 1}')])
        sent += 1
        return counter(d, "stored") > 0

    d.wait(stored, 30, "a first stored message")
    d.wait(lambda: counter(d, "stored") == sent, 30, "every probe stored")  # none left to land later


@pytest.mark.parametrize("peer_name", peers("200 equal QoS 1 payloads: 200 readings, stored counter = rows"))
def test_equal_payloads_are_all_stored(
    peer_name: str, peer_broker: PeerBroker, daemon: Callable[[str], DaemonProc], peer_version: Any
) -> None:
    peer_version(peer_broker.version, peer_broker.note)
    d = daemon(site_yaml([broker_endpoint(peer_broker)]))
    _prime(d, peer_broker)
    base = counter(d, "stored")
    publish(peer_broker, [(f"peer{peer_broker.tag}/d1/v", b'{"value": 7}')] * 200)
    d.wait(lambda: counter(d, "stored") >= base + 200, 60, "200 more stored")
    rows = readings(d, "v")
    assert len(rows) == 200 and {r["value"] for r in rows} == {7}
    assert counter(d, "stored") == len(rows) + len(readings(d, "probe"))  # every stored reading, nothing more
    assert counter(d, "duplicate") == 0
    assert d.endpoint(SITE, "mq")["state"] == "up"
    peer_version(peer_broker.version, f"{peer_broker.detail}200 of 200 stored; stored counter = rows")


@pytest.mark.slow
@pytest.mark.parametrize("peer_name", peers("numbered QoS 1, fieldwatch kill -9 mid-way and restarted: 0 lost"))
def test_kill9_midway_loses_nothing(
    peer_name: str, peer_broker: PeerBroker, daemon: Callable[[str], DaemonProc], peer_version: Any,
    tmp_path: Path
) -> None:
    """Most messages stream in while fieldwatch runs and is killed; the rest arrive while it is dead."""
    peer_version(peer_broker.version, peer_broker.note)
    total, streamed = 2500, 2000
    db = tmp_path / "fieldwatch.db"
    d = daemon(site_yaml([broker_endpoint(peer_broker)]))
    _prime(d, peer_broker)

    def numbered(first: int, last: int) -> list[tuple[str, bytes]]:
        return [(f"peer{peer_broker.tag}/d{i % 5}/n", json.dumps({"value": i}).encode()) for i in range(first, last)]

    failures: list[BaseException] = []

    def stream() -> None:
        try:
            publish(peer_broker, numbered(0, streamed), timeout_s=60)
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            failures.append(err)

    publisher = threading.Thread(target=stream, daemon=True)
    publisher.start()
    d.wait(lambda: _rows(db, "n")[0] >= 100, 30, "the first numbered readings")
    d.kill()  # SIGKILL while messages stream in and are being stored
    killed = time.monotonic()
    at_kill, _ = _rows(db, "n")
    committed_before = _rows(db)[0]
    assert at_kill < streamed, f"{at_kill} stored at the kill: not mid-way"
    publisher.join(60)
    assert not publisher.is_alive() and not failures, failures
    publish(peer_broker, numbered(streamed, total))  # queued for the session while fieldwatch is dead
    d.start()
    d.wait(lambda: _rows(db, "n")[1] == total, 90, f"all {total} numbered messages stored")
    complete_s = time.monotonic() - killed
    rows, distinct = _rows(db, "n")
    assert distinct == total  # 0 lost
    assert rows >= total
    d.wait(lambda: counter(d, "stored") == _rows(db)[0] - committed_before, 10,
           "the stored counter of the restarted process to equal the rows it added")
    peer_version(peer_broker.version,
                 f"{peer_broker.detail}{at_kill} stored at the kill; {distinct} of {total} stored "
                 f"{complete_s:.1f} s after the kill, 0 lost, {rows - total} stored twice by then")
