"""SPEC §3 duplicates: only a broker redelivery (DUP) of a committed message, or a stored parser identity.

Real daemon (harness, SQLite through the persistence actor). The redelivery case uses
`RawBroker`, a scripted socket "broker": no real broker redelivers on demand at the
one moment that matters (after our commit, before our PUBACK reached it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldwatch.actors.mqtt.schema import MqttOptions, ParserConfig
from fieldwatch.config.model import EndpointConfig, SiteConfig
from fieldwatch.storage.writes import ReadingRecord
from tests.actors.mqtt.mqtt_helpers import publish
from tests.actors.mqtt.raw_broker import RawBroker
from tests.harness import Harness, fast_policy
from tests.mosquitto import MosquittoBroker
from tests.waiting import wait_for

TOPIC = "sensors/dev/level"


def _start(harness: Harness, port: int, parser: ParserConfig) -> None:
    options = MqttOptions(host="127.0.0.1", port=port, client_id="fw-dup", keepalive_s=5, qos=1,
                          topics=("sensors/#",), parsers=(parser,), offline_after_s=None)
    harness.start([SiteConfig("s1", endpoints=(EndpointConfig("mq", "mqtt", options),))], policy=fast_policy())


def _counter(harness: Harness, label: str) -> float:
    return harness.status("s1", "mq").counters.get(("mqtt_messages", label), 0.0)


@pytest.fixture
def raw_broker() -> Iterator[RawBroker]:
    broker = RawBroker()
    yield broker
    broker.close()


def test_dup_redelivery_of_a_message_committed_after_its_link_died_is_a_duplicate(
    raw_broker: RawBroker, harness: Harness, tmp_path: Path
) -> None:
    """Committed while the link was gone: no PUBACK went out, the DUP redelivery is acked, not stored again."""
    raw_broker.session_present = True
    _start(harness, raw_broker.port, ParserConfig(match="sensors/+device/+metric", format="json", value="$.value"))
    harness.wait_state("s1", "mq", "up", timeout=10)
    raw_broker.publish(0, TOPIC, b'{"value": 1}', mid=10)
    raw_broker.wait(lambda: (0, 10) in raw_broker.pubacks, what="the first message acked")
    assert harness.daemon is not None
    storage = harness.daemon.storage

    lock = sqlite3.connect(tmp_path / "fieldwatch.db", timeout=5, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # storage is slow: the next commit waits for us
    try:
        raw_broker.publish(0, TOPIC, b'{"value": 7}', mid=1)
        wait_for(lambda: any(type(w) is ReadingRecord and w.value_num == 7 for w in storage.peek(10_000)), 10,
                 what="the reading queued")
        raw_broker.drop(0)
        harness.wait_state("s1", "mq", "down", timeout=5)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: len(harness.readings("s1", "mq")) == 2, 10, what="the reading committed")
    assert (0, 1) not in raw_broker.pubacks  # committed after the link died: never acknowledged
    raw_broker.wait(lambda: len(raw_broker.connections) >= 2, what="the reconnection")
    harness.wait_state("s1", "mq", "up", timeout=10)

    raw_broker.publish(1, TOPIC, b'{"value": 7}', mid=1, dup=True)  # the broker's redelivery
    raw_broker.wait(lambda: (1, 1) in raw_broker.pubacks, what="the redelivery acked")
    wait_for(lambda: _counter(harness, "duplicate") == 1, 5, what="one duplicate counted")
    assert len(harness.readings("s1", "mq")) == 2 and _counter(harness, "stored") == 2

    # the packet id is free again: the same id with an equal payload is a new reading, and so is
    # a DUP message this session never committed
    raw_broker.publish(1, TOPIC, b'{"value": 7}', mid=1)
    raw_broker.publish(1, TOPIC, b'{"value": 7}', mid=2, dup=True)
    raw_broker.wait(lambda: raw_broker.pubacks.count((1, 1)) == 2 and (1, 2) in raw_broker.pubacks,
                    what="both acked")
    wait_for(lambda: len(harness.readings("s1", "mq")) == 4 and _counter(harness, "stored") == 4, 5,
             what="4 readings stored")
    assert _counter(harness, "duplicate") == 1
    wait_for(lambda: [e for e in harness.events("s1", "mq") if e["event"] == "duplicates"], 5,
             what="the duplicate summary in the event log")
    summaries = [e for e in harness.events("s1", "mq") if e["event"] == "duplicates"]
    assert len(summaries) == 1 and "1 duplicate message suppressed" in summaries[0]["message"]
    assert "1 broker redelivery" in summaries[0]["message"]


def test_equal_payloads_are_readings_and_only_a_stored_identity_is_a_duplicate(
    broker: MosquittoBroker, harness: Harness
) -> None:
    """200 equal payloads without identity: 200 rows; with a timestamp identity, repeats are duplicates."""
    parser = ParserConfig(match="sensors/+device/+metric", format="json", value="$.value", timestamp="$.ts")
    plain = ParserConfig(match="plain/+device/+metric", format="json", value="$.value")
    options = MqttOptions(host="127.0.0.1", port=broker.port, client_id="fw-dup", keepalive_s=5, qos=1,
                          topics=("sensors/#", "plain/#"), parsers=(parser, plain), offline_after_s=None)
    harness.start([SiteConfig("s1", endpoints=(EndpointConfig("mq", "mqtt", options),))], policy=fast_policy())
    harness.wait_state("s1", "mq", "up", timeout=10)
    wait_for(lambda: publish(broker.port, [("plain/probe/p", b'{"value": 0}')]) or _counter(harness, "stored"),
             10, interval=0.2, what="the subscription active")
    publish(broker.port, [("plain/d/v", b'{"value": 7}')] * 200)
    wait_for(lambda: len(harness.readings("s1", "mq", name="v")) == 200, 30, what="200 equal payloads stored")
    wait_for(lambda: _counter(harness, "stored") == len(harness.readings("s1", "mq")), 10,
             what="the stored counter to equal the rows")

    stamped = json.dumps({"value": 3, "ts": 1_700_000_000}).encode()
    publish(broker.port, [(TOPIC, stamped)] * 3)
    wait_for(lambda: _counter(harness, "duplicate") == 2, 10, what="2 identity duplicates")
    assert len(harness.readings("s1", "mq", name="level")) == 1
    assert len(harness.readings("s1", "mq", name="v")) == 200
    assert _counter(harness, "stored") == len(harness.readings("s1", "mq"))
