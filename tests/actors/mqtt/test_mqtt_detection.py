"""Bounded detection of a broker that does not answer (SPEC §9), from the first connection attempt on.

A frozen Mosquitto still completes TCP handshakes (the kernel queues them), so
a connect to it waits for a CONNACK; a host that drops our SYN (gone from the
network, or a listener whose accept queue is full) never completes the
handshake. Either way the endpoint must show `down` within the detection bound
of its keepalive (the client's silence limit + 1 s), not `connecting` until some longer
timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from fieldwatch.actors.mqtt.client import RC_CONNECT_FAILED, MqttClient
from fieldwatch.actors.mqtt.schema import MqttOptions
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.actors.mqtt.mqtt_helpers import Recorder
from tests.harness import Harness, fast_policy
from tests.mosquitto import MosquittoBroker
from tests.waiting import wait_for

KEEPALIVE_S = 2
#: the client's silence limit (`MqttClient.silence_limit_s`: max(1.5 x keepalive, keepalive + 1.5 s),
#: 3.5 s here) plus 1 s for the watchdog tick and the actor's start before the attempt
BOUND_S = max(1.5 * KEEPALIVE_S, KEEPALIVE_S + 1.5) + 1.0


@pytest.fixture
def syn_dropper() -> Iterator[int]:
    """A port on 127.0.0.1 whose listener never accepts and whose accept queue is full: SYNs go unanswered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # fills the one-entry accept queue
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this kernel completes handshakes beyond a full accept queue; no unanswered-SYN peer")
    except TimeoutError:
        pass  # as intended: the handshake never completes
    finally:
        probe.close()
    yield port
    filler.close()
    server.close()


def test_unanswered_tcp_handshake_fails_the_attempt_within_the_bound(syn_dropper: int) -> None:
    rec = Recorder()
    client = rec.client(syn_dropper, keepalive_s=KEEPALIVE_S)
    began = time.monotonic()
    client.start()
    try:
        rec.wait_for(lambda: bool(rec.connects), timeout_s=15)
    finally:
        client.stop()
    code, reason, at = rec.connects[0]
    assert code == RC_CONNECT_FAILED and "timed out" in reason
    assert at - began <= BOUND_S, f"the attempt took {at - began:.1f} s, bound {BOUND_S:g} s"


def _start(harness: Harness, port: int) -> None:
    options = MqttOptions(host="127.0.0.1", port=port, client_id="fw-test", keepalive_s=KEEPALIVE_S, qos=1,
                          topics=("sensors/#",), offline_after_s=None)
    harness.start([SiteConfig("s1", endpoints=(EndpointConfig("mq", "mqtt", options),))], policy=fast_policy())


def _connecting_then_down(harness: Harness) -> tuple[float, set[str]]:
    """Seconds from `connecting` (the board's own `since`) to `down`, and every state seen meanwhile."""
    seen: set[str] = set()
    since: dict[str, float] = {}

    def shown_down() -> bool:
        status = harness.status("s1", "mq")
        state = harness.state("s1", "mq")
        seen.add(state)
        since.setdefault(state, status.since)
        return state == "down"

    wait_for(shown_down, 15, interval=0.05, what="the endpoint to show down")
    assert "connecting" in since, f"never seen connecting: {seen}"
    return since["down"] - since["connecting"], seen


def test_first_connect_to_a_silent_host_shows_down_within_the_bound(syn_dropper: int, harness: Harness) -> None:
    _start(harness, syn_dropper)
    took, seen = _connecting_then_down(harness)
    assert took <= BOUND_S, f"`connecting` for {took:.1f} s before `down` (seen {sorted(seen)}), bound {BOUND_S:g} s"
    assert "up" not in seen
    assert "timed out" in (harness.status("s1", "mq").reason or "")


def test_frozen_broker_at_first_connect_shows_down_within_the_bound(broker: MosquittoBroker,
                                                                    harness: Harness) -> None:
    """The handshake completes (the kernel queues it), the CONNACK never comes."""
    broker.freeze()
    try:
        _start(harness, broker.port)
        took, seen = _connecting_then_down(harness)
    finally:
        broker.thaw()
    assert took <= BOUND_S, f"`connecting` for {took:.1f} s before `down` (seen {sorted(seen)}), bound {BOUND_S:g} s"
    assert "up" not in seen and "CONNACK" in (harness.status("s1", "mq").reason or "")
    harness.wait_state("s1", "mq", "up", timeout=10)


def test_connect_timeout_never_exceeds_the_silence_limit() -> None:
    """The TCP/TLS handshake gets at most the silence limit; with a long keepalive, the configured timeout."""
    def make(keepalive_s: int) -> MqttClient:
        return Recorder().client(1, keepalive_s=keepalive_s, connect_timeout_s=10.0)

    assert make(2).connect_timeout_s == make(2).silence_limit_s == 3.5
    assert make(4).connect_timeout_s == 6.0
    assert make(60).connect_timeout_s == 10.0
    assert make(0).connect_timeout_s == 10.0
