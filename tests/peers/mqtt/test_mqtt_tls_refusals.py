"""Issue 13, MQTT refusals: what an operator sees for each way Mosquitto (TLS, password file) says no.

One `fieldwatch run` process holds one endpoint per case; each test reads its endpoint's
state and reason through the API, as an operator would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.actors.mqtt.tls import TLS_CLIENT_CERT_HINT
from tests.e2e.daemon_proc import DaemonProc
from tests.peers.mqtt.mqtt_certs import Pki
from tests.peers.mqtt.mqtt_peer import PASSWORD, SITE, USER, endpoint_yaml, site_yaml

TLS_HINT_EXPECTS = "the broker expects TLS"


@pytest.fixture(scope="module")
def refusals(mosquitto_tls: dict[str, Any], pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    """fieldwatch with one endpoint per refusal case (and a positive control), all against one Mosquitto."""
    port, strict, wrong_host = mosquitto_tls["port"], mosquitto_tls["strict"], mosquitto_tls["wrong_host"]
    ca, cert, key = str(pki.ca), str(pki.client_cert), str(pki.client_key)
    creds = {"username": USER, "password": PASSWORD}
    endpoints = [
        endpoint_yaml("nocert", strict, tls={"ca": ca}, **creds),
        endpoint_yaml("foreign", strict, tls={"ca": ca, "cert": str(pki.foreign_cert), "key": str(pki.foreign_key)},
                      **creds),
        endpoint_yaml("goodcert", strict, tls={"ca": ca, "cert": cert, "key": key}, **creds),
        endpoint_yaml("plain", strict, **creds),
        endpoint_yaml("wrongca", port, tls={"ca": str(pki.foreign_ca)}, **creds),
        endpoint_yaml("wronghost", wrong_host, tls={"ca": ca}, **creds),
        endpoint_yaml("wrongpass", port, tls={"ca": ca}, username=USER, password="not-the-password"),
    ]
    workdir = tmp_path_factory.mktemp("refusals")
    proc = DaemonProc(str(workdir), site_yaml(endpoints)).start()
    yield proc
    proc.kill()


def _case(case: str) -> Any:
    return pytest.mark.peer(protocol="mqtt", peer="mosquitto", case=case)


def _settled(d: DaemonProc, endpoint: str, state: str) -> dict[str, Any]:
    ep = d.wait_state(SITE, endpoint, state, 30)
    return dict(ep)


def _record(peer_version: Any, mosquitto_tls: dict[str, Any], ep: dict[str, Any]) -> None:
    peer_version(mosquitto_tls["version"], f"{ep['state']}: {ep['reason']}")


@_case("require_certificate true, no client certificate: faulty with the client-certificate hint")
def test_no_client_certificate(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "nocert", "faulty")
    _record(peer_version, mosquitto_tls, ep)
    assert TLS_CLIENT_CERT_HINT in ep["reason"]
    assert "TLSV13_ALERT_CERTIFICATE_REQUIRED" in ep["reason"]  # the broker's alert, verbatim
    alerts = refusals.get(f"/api/v1/alerts?site={SITE}&endpoint=nocert&active=true")["items"]
    assert [a["condition"] for a in alerts] == ["faulty"]


@_case("require_certificate true, a certificate from another CA: faulty with the hint and the TLS alert")
def test_foreign_client_certificate(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "foreign", "faulty")
    _record(peer_version, mosquitto_tls, ep)
    assert TLS_CLIENT_CERT_HINT in ep["reason"] and "TLSV1_ALERT_UNKNOWN_CA" in ep["reason"]


@_case("require_certificate true, a certificate from the broker's CA: up")
def test_accepted_client_certificate(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "goodcert", "up")
    _record(peer_version, mosquitto_tls, ep)
    assert "code 0" in ep["reason"]


@_case("plain TCP to a TLS port: faulty, 'the broker expects TLS'")
def test_plain_tcp_to_a_tls_port(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "plain", "faulty")
    _record(peer_version, mosquitto_tls, ep)
    assert TLS_HINT_EXPECTS in ep["reason"] and TLS_CLIENT_CERT_HINT not in ep["reason"]


@_case("TLS, broker certificate from a CA we do not trust: faulty, verification error")
def test_wrong_ca(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "wrongca", "faulty")
    _record(peer_version, mosquitto_tls, ep)
    assert "CERTIFICATE_VERIFY_FAILED" in ep["reason"] and TLS_CLIENT_CERT_HINT not in ep["reason"]


@_case("TLS, broker certificate for another host name: faulty, verification error")
def test_wrong_host(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "wronghost", "faulty")
    _record(peer_version, mosquitto_tls, ep)
    assert "CERTIFICATE_VERIFY_FAILED" in ep["reason"] and "mismatch" in ep["reason"]


@_case("TLS, wrong password: faulty, 'Not authorized (code 5)'")
def test_wrong_password(refusals: DaemonProc, mosquitto_tls: dict[str, Any], peer_version: Any) -> None:
    ep = _settled(refusals, "wrongpass", "faulty")
    _record(peer_version, mosquitto_tls, ep)
    assert "Not authorized" in ep["reason"] and "code 5" in ep["reason"]
    events = refusals.get(f"/api/v1/events?site={SITE}&endpoint=wrongpass")["items"]
    assert events and "not-the-password" not in str(events)
