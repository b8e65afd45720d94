"""Acceptance tests of issue 7 that need no daemon process: the MQTT actor in a real daemon (harness)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fieldwatch.actors.mqtt.schema import MqttOptions, ParserConfig
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.actors.mqtt.mqtt_helpers import publish
from tests.harness import Harness, fast_policy
from tests.mosquitto import MosquittoBroker, write_password_file
from tests.waiting import wait_for

PARSER = ParserConfig(match="sensors/+device/+metric", format="json", value="$.value", timestamp="$.ts")


def _options(port: int, **overrides: Any) -> MqttOptions:
    base = MqttOptions(host="127.0.0.1", port=port, client_id="fw-test", keepalive_s=5, qos=1,
                       topics=("sensors/#", "other/#"), parsers=(PARSER,), offline_after_s=None)
    return replace(base, **overrides)


def _start(harness: Harness, options: MqttOptions) -> None:
    harness.start([SiteConfig("s1", endpoints=(EndpointConfig("mq", "mqtt", options),))], policy=fast_policy())


def _counter(harness: Harness, label: str) -> float:
    return harness.status("s1", "mq").counters.get(("mqtt_messages", label), 0.0)


def _payload(value: float, ts: float | None = None, **extra: Any) -> bytes:
    return json.dumps({"value": value, "ts": time.time() if ts is None else ts, **extra}).encode()


def _prime(harness: Harness, port: int) -> None:
    """Publish until a reading is stored: the actor's subscription is active from then on."""
    harness.wait_state("s1", "mq", "up", timeout=10)

    def stored() -> bool:
        publish(port, [("sensors/probe/ping", _payload(1))])
        return _counter(harness, "stored") > 0

    wait_for(stored, 10, interval=0.2, what="a first stored message")


def test_messages_parsed_stored_and_bad_input_counted(broker: MosquittoBroker, harness: Harness) -> None:
    _start(harness, _options(broker.port))
    _prime(harness, broker.port)
    big = _payload(7.5, pad="x" * 1_000_000)
    publish(broker.port, [(f"sensors/dev{i % 3}/temp", _payload(i, 1_700_000_000 + i)) for i in range(20)]
            + [("sensors/dev0/temp", b"{not json" + b"y" * 10_000), ("other/thing", b"1"), ("other/x", b"2"),
               ("sensors/big/level", big)])
    wait_for(lambda: len(harness.readings("s1", "mq", name="temp")) == 20
             and len(harness.readings("s1", "mq", name="level")) == 1
             and _counter(harness, "parse_error") == 1 and _counter(harness, "ignored") == 2, 10,
             what="21 stored, 1 parse error, 2 ignored")
    # the counter follows the commit callbacks, which run just after the rows are readable
    wait_for(lambda: _counter(harness, "stored") == len(harness.readings("s1", "mq")), 5, what="stored == readings")
    temps = harness.readings("s1", "mq", name="temp")
    assert sorted(r["value"] for r in temps) == list(range(20))
    assert {r["device"] for r in temps} == {"dev0", "dev1", "dev2"}
    assert [r["value"] for r in harness.readings("s1", "mq", name="level")] == [7.5]
    errors, _ = harness.queries.parse_errors(site="s1", endpoint="mq")
    assert len(errors) == 1 and errors[0]["topic"] == "sensors/dev0/temp"
    assert errors[0]["parser"] == "sensors/+device/+metric" and "invalid JSON" in errors[0]["error"]
    assert len(errors[0]["sample"]) == 5000
    def topics() -> dict[str, dict[str, Any]]:
        harness.flush()
        return {t["topic"]: t for t in harness.queries.topics(site="s1")[0]}

    wait_for(lambda: topics().get("sensors/dev0/temp", {}).get("count") == 8, 5, what="topic counts flushed")
    topics_now = topics()
    assert topics_now["sensors/dev0/temp"]["is_processable"] and topics_now["sensors/big/level"]["count"] == 1
    assert not topics_now["other/x"]["is_processable"] and topics_now["other/x"]["is_active"]


def test_topic_switched_off_is_not_processed(broker: MosquittoBroker, harness: Harness) -> None:
    _start(harness, _options(broker.port))
    _prime(harness, broker.port)
    assert harness.daemon is not None
    controller = harness.daemon.controller
    assert controller is not None
    controller.set_topic_active("s1", "mq", "sensors/probe/ping", False)
    ignored = _counter(harness, "ignored")
    publish(broker.port, [("sensors/probe/ping", _payload(2))])
    wait_for(lambda: _counter(harness, "ignored") == ignored + 1, 5, what="the switched-off topic ignored")
    controller.set_topic_active("s1", "mq", "sensors/probe/ping", True)
    stored = _counter(harness, "stored")
    publish(broker.port, [("sensors/probe/ping", _payload(3))])
    wait_for(lambda: _counter(harness, "stored") == stored + 1, 5, what="the topic processed again")


def test_broker_killed_then_restarted(broker: MosquittoBroker, harness: Harness) -> None:
    _start(harness, _options(broker.port, keepalive_s=30))
    harness.wait_state("s1", "mq", "up", timeout=10)
    killed = time.monotonic()
    broker.kill()
    status = harness.wait_state("s1", "mq", "down", timeout=3)
    assert time.monotonic() - killed < 1.5
    assert status.down_since is not None and "code" in (status.reason or "")
    broker.restart()
    harness.wait_state("s1", "mq", "up", timeout=10)
    events = [e["event"] for e in harness.events("s1", "mq")]
    assert "up->down" in events and "down->up" in events


def test_frozen_broker_down_within_one_and_a_half_keepalive(broker: MosquittoBroker, harness: Harness) -> None:
    _start(harness, _options(broker.port, keepalive_s=2))
    harness.wait_state("s1", "mq", "up", timeout=10)
    broker.freeze()
    frozen = time.monotonic()
    try:
        status = harness.wait_state("s1", "mq", "down", timeout=6)
        assert time.monotonic() - frozen <= 1.5 * 2 + 1.0
        assert "keepalive" in (status.reason or "")
    finally:
        broker.thaw()
    harness.wait_state("s1", "mq", "up", timeout=10)


def test_wrong_password_is_faulty(
    broker_factory: Callable[..., MosquittoBroker], harness: Harness, tmp_path: Path
) -> None:
    broker = broker_factory(password_file=write_password_file(tmp_path / "passwd", {"site13": "right"}))
    _start(harness, _options(broker.port, username="site13", password="wrong"))
    status = harness.wait_state("s1", "mq", "faulty", timeout=10)
    assert "Not authorized" in (status.reason or "") and "code 5" in (status.reason or "")
    alerts = harness.alerts("s1", "mq", active=True)
    assert [a["condition"] for a in alerts] == ["faulty"]
    assert "wrong" not in json.dumps(harness.events("s1", "mq"))


def test_device_offline_and_back_online(broker: MosquittoBroker, harness: Harness) -> None:
    _start(harness, _options(broker.port, offline_after_s=1.0))
    _prime(harness, broker.port)
    publish(broker.port, [("sensors/pump/temp", _payload(1))])
    wait_for(lambda: ("offline", "pump") in harness.status("s1", "mq").alerts, 4, what="pump offline")
    sent_at = time.monotonic()
    publish(broker.port, [("sensors/pump/temp", _payload(2))])
    wait_for(lambda: ("offline", "pump") not in harness.status("s1", "mq").alerts, 3, what="pump online")
    assert time.monotonic() - sent_at < 2
    events = [e["event"] for e in harness.events("s1", "mq")]
    assert "device-offline" in events and "device-online" in events
    assert harness.state("s1", "mq") == "up"  # a silent device does not affect the endpoint
    alerts = [a for a in harness.alerts("s1", "mq") if a["condition"] == "offline"]
    assert any(a["resolved_at"] for a in alerts)


def test_stale_when_connected_but_silent(broker: MosquittoBroker, harness: Harness) -> None:
    _start(harness, _options(broker.port, stale_after_s=1.0))
    _prime(harness, broker.port)
    harness.wait_state("s1", "mq", "stale", timeout=4)
    publish(broker.port, [("sensors/x/temp", _payload(1))])
    harness.wait_state("s1", "mq", "up", timeout=3)


def test_redelivered_messages_stored_once(broker: MosquittoBroker, harness: Harness) -> None:
    """Messages queued while the endpoint is away arrive after restart; redeliveries are not stored twice."""
    _start(harness, _options(broker.port))
    _prime(harness, broker.port)
    harness.stop()
    publish(broker.port, [(f"sensors/d/n{i}", _payload(i, 1_700_000_000)) for i in range(50)])
    publish(broker.port, [("sensors/d/same", b'{"value": 1, "ts": 1700000000}')] * 2)  # a publisher duplicate
    _start(harness, _options(broker.port))
    wait_for(lambda: len(harness.readings("s1", "mq", name="n49")) == 1 and len(harness.readings("s1", "mq")) >= 52,
             10, what="the queued messages stored")
    names = [r["name"] for r in harness.readings("s1", "mq")]
    assert sum(n.startswith("n") for n in names) == 50 and names.count("same") == 1
