"""How the MQTT peer tests talk to a broker and to fieldwatch: config, publisher, /metrics, readings."""

from __future__ import annotations

import json
import re
import secrets
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.daemon_proc import DaemonProc

__all__ = ["PASSWORD", "SITE", "USER", "PeerBroker", "broker_endpoint", "counter", "endpoint_yaml", "publish", "readings", "site_yaml"]

SITE = "peers"
#: The Mosquitto password file's one user.
USER, PASSWORD = "site13", "s3cret-peer"


@dataclass
class PeerBroker:
    """A running broker as a client reaches it (port, TLS CA, credentials) and its version."""

    name: str
    port: int
    version: str
    tls_ca: str | None = None
    username: str | None = None
    password: str | None = None
    note: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(3))  # topics and client ids of one test

    @property
    def detail(self) -> str:
        return f"{self.note}; " if self.note else ""


def endpoint_yaml(name: str, port: int, *, topics: str = "", client_id: str | None = None,
                  tls: dict[str, str] | None = None, username: str | None = None, password: str | None = None,
                  parser_match: str = "", keepalive_s: int = 5) -> str:
    """One `kind: mqtt` endpoint (YAML, indented for site_yaml): JSON `$.value`, no identity."""
    lines = [f"      - name: {name}", "        kind: mqtt", "        host: 127.0.0.1", f"        port: {port}",
             f"        keepalive_s: {keepalive_s}", "        qos: 1", "        offline_after_s: null"]
    if client_id:
        lines.append(f"        client_id: {client_id}")
    if tls:
        lines.append("        tls: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in tls.items()) + "}")
    if username:
        lines += [f"        username: {username}", f"        password: {json.dumps(password)}"]
    match = parser_match or f"{name}/+device/+metric"
    lines += [f"        topics: [{json.dumps(topics or match.split('/')[0] + '/#')}]",
              "        parsers:", f"          - {{match: {json.dumps(match)}, format: json, value: \"$.value\"}}"]
    return "\n".join(lines) + "\n"


def site_yaml(endpoints: Iterable[str]) -> str:
    """A daemon config (DaemonProc placeholders) with one site holding `endpoints`."""
    return (
        'storage: {url: "sqlite:///@DIR@/fieldwatch.db"}\n'
        'http: {listen: "127.0.0.1:@PORT@", token: "${FIELDWATCH_TOKEN}"}\n'
        'logging: {file: "@DIR@/fieldwatch.log", level: debug}\n'
        f"sites:\n  - name: {SITE}\n    endpoints:\n" + "".join(endpoints)
    )


def broker_endpoint(broker: PeerBroker, name: str = "mq") -> str:
    """The endpoint for `broker` with a persistent session (stable client id, QoS 1)."""
    tls = {"ca": broker.tls_ca} if broker.tls_ca else None
    return endpoint_yaml(name, broker.port, client_id=f"fw-{broker.tag}", tls=tls, username=broker.username,
                         password=broker.password, parser_match=f"peer{broker.tag}/+device/+metric")


def publish(broker: PeerBroker, messages: Iterable[tuple[str, bytes]], timeout_s: float = 30.0) -> None:
    """Publish QoS 1 messages from a throwaway paho client; returns once the broker acked each."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{secrets.token_hex(4)}")
    if broker.tls_ca:
        client.tls_set(ca_certs=broker.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise AssertionError(f"{broker.name} did not confirm a publish within {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def counter(daemon: DaemonProc, result: str, endpoint: str = "mq") -> float:
    """fieldwatch_mqtt_messages_total{result=...} of the endpoint, read through GET /metrics."""
    status, body = daemon.request("GET", "/metrics", token=None)
    assert status == 200, status
    text = body.decode() if isinstance(body, bytes) else str(body)
    wanted = {"site": SITE, "endpoint": endpoint, "result": result}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or found["name"] != "fieldwatch_mqtt_messages_total":
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
        if all(labels.get(k) == v for k, v in wanted.items()):
            return float(found["value"])
    return 0.0


def readings(daemon: DaemonProc, name: str, endpoint: str = "mq") -> list[dict[str, Any]]:
    """The stored readings `name` of the endpoint, through GET /api/v1/readings (every page)."""
    items: list[dict[str, Any]] = []
    path = f"/api/v1/readings?site={SITE}&endpoint={endpoint}&name={name}&limit=10000"
    while True:
        page = daemon.get(path)
        items += page["items"]
        if not page.get("next"):
            return items
        path = f"/api/v1/readings?site={SITE}&endpoint={endpoint}&name={name}&limit=10000&cursor={page['next']}"
