"""Fixtures for the MQTT peer matrix: one broker of each kind per module, fieldwatch as a real process.

Every broker runs on free ports on 127.0.0.1 in a temp dir and is stopped at the end of
the module; none of the machine's own brokers (1883, 4222, 5672) is ever used. A broker
that cannot run here skips its tests with the reason printed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mosquitto import MosquittoBroker, free_port, mosquitto_binary, write_password_file
from tests.peers.mqtt.mqtt_brokers import AedesBroker, BrokerUnavailable, NatsBroker, RabbitBroker
from tests.peers.mqtt.mqtt_certs import Pki, make_pki
from tests.peers.mqtt.mqtt_peer import PASSWORD, USER, PeerBroker


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, server and client certificates, and a foreign CA with its client pair."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def _unavailable(reason: str) -> None:
    print(f"SKIP reason: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def mosquitto_tls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, Any]]:
    """One Mosquitto with a password file and three TLS listeners.

    `port`: require_certificate false (the data tests); `strict`: require_certificate
    true; `wrong_host`: a server certificate for another host name.
    """
    binary = mosquitto_binary()
    if binary is None:
        _unavailable("mosquitto is not installed (scripts/test.sh installs it)")
    work = tmp_path_factory.mktemp("mosquitto")
    strict, wrong_host = free_port(), free_port()
    tls = f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    extra = (
        f"{tls}require_certificate false\n"  # options for the first listener (broker.port)
        f"listener {strict} 127.0.0.1\n{tls}require_certificate true\n"
        f"listener {wrong_host} 127.0.0.1\ncafile {pki.ca}\ncertfile {pki.wrong_host_cert}\nkeyfile {pki.wrong_host_key}\n"
    )
    password_file = write_password_file(work / "passwd", {USER: PASSWORD})
    broker = MosquittoBroker(workdir=work / "broker", password_file=password_file, extra_config=extra)
    broker.start()
    assert binary is not None
    version = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout.split()[2]
    yield {"broker": broker, "port": broker.port, "strict": strict, "wrong_host": wrong_host, "version": version}
    broker.kill()


def _process_broker(factory: Callable[[Path], Any], tmp_path_factory: pytest.TempPathFactory,
                    name: str) -> Iterator[Any]:
    broker = factory(tmp_path_factory.mktemp(name))
    try:
        broker.start()
    except BrokerUnavailable as err:
        broker.stop()
        _unavailable(str(err))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def nats_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsBroker]:
    yield from _process_broker(NatsBroker, tmp_path_factory, "nats")


@pytest.fixture(scope="module")
def aedes_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AedesBroker]:
    yield from _process_broker(AedesBroker, tmp_path_factory, "aedes")


@pytest.fixture(scope="module")
def rabbit_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitBroker]:
    yield from _process_broker(RabbitBroker, tmp_path_factory, "rabbitmq")


@pytest.fixture
def peer_broker(request: pytest.FixtureRequest, pki: Pki) -> PeerBroker:
    """The broker named by the test's `peer_name` parameter, as fieldwatch and a publisher reach it."""
    name = request.getfixturevalue("peer_name")
    if name == "mosquitto":
        m = request.getfixturevalue("mosquitto_tls")
        return PeerBroker("mosquitto", m["port"], m["version"], tls_ca=str(pki.ca), username=USER,
                          password=PASSWORD, note="TLS + password file")
    fixture = {"nats-server": "nats_broker", "aedes": "aedes_broker", "rabbitmq": "rabbit_broker"}[name]
    broker = request.getfixturevalue(fixture)
    return PeerBroker(name, broker.port, broker.version, note=getattr(broker, "note", ""))
