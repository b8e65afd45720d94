"""fieldwatch against node-opcua (a server nobody on this project wrote): security, users, refusals.

Every test starts its own node-opcua server on a free port on 127.0.0.1 with its
PKI folder in the test's temp dir, and a real daemon (tests/harness.py) with
the fast test policy (backoff 0.2 s .. 1 s: a `faulty` endpoint retries every second).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fieldwatch.actors.opcua.schema import NodeConfig, OpcuaOptions, SecurityConfig
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.harness import Harness, fast_policy
from tests.peers.opcua.opcua_peers import PeerProcess, make_client_cert, trust_rejected
from tests.waiting import wait_for

LEVEL, COUNTER, STEADY = "ns=1;s=Tank1.Level", "ns=1;s=Counter", "ns=1;s=Steady"
SECURITY_CODE = re.compile(r"\bBad(Certificate\w*|SecurityChecksFailed|SecurityPolicyRejected)\b")


def _site(*endpoints: tuple[str, OpcuaOptions]) -> SiteConfig:
    return SiteConfig("peer", endpoints=tuple(EndpointConfig(name, "opcua", opts) for name, opts in endpoints))


def _options(url: str, **kwargs: object) -> OpcuaOptions:
    kwargs.setdefault("nodes", (NodeConfig(COUNTER, "counter", poll_s=0.3), NodeConfig(LEVEL, "level", poll_s=0.3)))
    kwargs.setdefault("timeout_s", 3.0)
    kwargs.setdefault("stale_after_s", 10.0)
    return OpcuaOptions(url=url, **kwargs)  # type: ignore[arg-type]


def _security(cert: Path, key: Path, mode: str, **kwargs: str) -> SecurityConfig:
    return SecurityConfig("Basic256Sha256", mode, str(cert), str(key), **kwargs)


def _readings(fw: Harness, name: str, at_least: int) -> list[dict[str, object]]:
    rows = wait_for(
        lambda: (lambda r: r if len(r) >= at_least else None)(fw.readings("peer", "plc", name)),
        10, what=f"{at_least} {name} readings",
    )
    assert all(row["quality"] == "Good" for row in rows)
    return list(rows)


def _log_lines(fw: Harness, *needles: str) -> list[str]:
    text = (fw.tmp_path / "fieldwatch.log").read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if all(needle in line for needle in needles)]


@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="security None: up with readings")
def test_none_up_with_readings(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    server = node_server(security="None")
    peer_version(server.version)
    fw.start([_site(("plc", _options(server.url)))], policy=fast_policy())
    fw.wait_state("peer", "plc", "up", timeout=15)
    counter = _readings(fw, "counter", 3)
    assert isinstance(counter[0]["value"], float)
    assert _readings(fw, "level", 3)


@pytest.mark.parametrize(
    ("mode", "pem", "cert_name", "key_name"),
    [
        # DER content in files named .pem: asyncua alone (format by suffix) would fail to load them
        pytest.param(
            "Sign", False, "client_cert.pem", "client_key.pem",
            marks=pytest.mark.peer(
                protocol="opcua", peer="node-opcua", case="Basic256Sha256 Sign, DER cert/key in files named .pem: up"
            ),
        ),
        # the acceptance case: our own application URI, a PEM key named client.key
        pytest.param(
            "SignAndEncrypt", True, "client.crt", "client.key",
            marks=pytest.mark.peer(
                protocol="opcua", peer="node-opcua",
                case="Basic256Sha256 SignAndEncrypt, own application URI, PEM client.key: up with readings",
            ),
        ),
    ],
)
def test_secure_modes_up_with_readings(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None], tmp_path: Path,
    mode: str, pem: bool, cert_name: str, key_name: str,
) -> None:
    server = node_server(security=mode, accept=True)
    peer_version(server.version, f"{'PEM' if pem else 'DER'} {cert_name} / {key_name}")
    uri = f"urn:fieldwatch:peer-test:{mode.lower()}"  # our own URI, not asyncua's example URI
    cert, key = make_client_cert(tmp_path, uri=uri, cert_name=cert_name, key_name=key_name, pem=pem)
    assert cert.read_bytes().startswith(b"-----BEGIN") is pem
    fw.start([_site(("plc", _options(server.url, security=_security(cert, key, mode))))], policy=fast_policy())
    fw.wait_state("peer", "plc", "up", timeout=20)
    assert _readings(fw, "counter", 3)


@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="user/password: right one up, wrong one faulty with the server's code")
def test_user_password(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    server = node_server(security="None", user="operator", password="s3cret-pw")
    peer_version(server.version)
    fw.start(
        [
            _site(
                ("plc", _options(server.url, username="operator", password="s3cret-pw")),
                ("wrong", _options(server.url, username="operator", password="not-the-password")),
                ("anonymous", _options(server.url)),
            )
        ],
        policy=fast_policy(),
    )
    fw.wait_state("peer", "plc", "up", timeout=15)
    assert _readings(fw, "counter", 2)
    wrong = fw.wait_state("peer", "wrong", "faulty", timeout=15)
    assert wrong.reason is not None
    assert re.match(r"Bad(UserAccessDenied|IdentityTokenRejected|IdentityTokenInvalid)\b", wrong.reason), wrong.reason
    assert "during activate session" in wrong.reason
    assert "not-the-password" not in wrong.reason
    anonymous = fw.wait_state("peer", "anonymous", "faulty", timeout=15)
    assert anonymous.reason is not None and anonymous.reason.startswith("Bad"), anonymous.reason
    peer_version(server.version, f"wrong password: faulty {wrong.reason!r}; anonymous: faulty {anonymous.reason!r}")


@pytest.mark.slow
@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="server refuses our certificate: faulty, one event; trusted on the server: up")
def test_refused_certificate_is_faulty_once_then_trusted_comes_up(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None], tmp_path: Path
) -> None:
    server = node_server(security="SignAndEncrypt", accept=False)
    peer_version(server.version)
    cert, key = make_client_cert(tmp_path)
    opts = _options(server.url, security=_security(cert, key, "SignAndEncrypt"))
    fw.start([_site(("plc", opts))], policy=fast_policy())
    status = fw.wait_state("peer", "plc", "faulty", timeout=15)
    assert status.reason is not None and SECURITY_CODE.search(status.reason), status.reason
    assert "trust" in status.reason and "AssertionError" not in status.reason
    refused = status.reason
    # faulty retries at the maximum backoff (1 s here): let it fail again at least twice
    wait_for(lambda: len(_log_lines(fw, "sites/peer/plc", "failed again")) >= 2, 10, what="two more attempts")
    events = fw.events("peer", "plc")
    failures = [e for e in events if e["level"] == "error"]
    assert len(failures) == 1, failures
    # one transition, and no quiet "state" event either: the reason is the same at every retry
    changes = [e["event"] for e in events if e["event"] == "state" or "->" in str(e["event"])]
    assert changes == ["connecting->faulty", "disabled->connecting"], changes  # newest first
    assert SECURITY_CODE.search(str(failures[0]["message"]))
    errors = _log_lines(fw, "sites/peer/plc", "ERROR")
    assert len(errors) == 1, errors  # the error once on entering failure, debug lines per retry
    assert [a["condition"] for a in fw.alerts("peer", "plc", active=True)] == ["faulty"]

    trusted = trust_rejected(server.pki)  # what the operator does: rejected/ -> trusted/certs/
    assert trusted
    started = time.monotonic()
    fw.wait_state("peer", "plc", "up", timeout=15)
    peer_version(server.version, f"faulty {refused!r}; up {time.monotonic() - started:.1f} s after trusting")
    assert _readings(fw, "counter", 2)
    assert not fw.alerts("peer", "plc", active=True)


@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="application_uri not the certificate's, or no SAN URI: faulty with the server's code")
def test_application_uri_mismatch_is_faulty_with_the_servers_code(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None], tmp_path: Path
) -> None:
    server = node_server(security="SignAndEncrypt", accept=True)
    peer_version(server.version)
    cert, key = make_client_cert(tmp_path, uri="urn:fieldwatch:in-the-certificate")
    security = _security(cert, key, "SignAndEncrypt", application_uri="urn:fieldwatch:something-else")
    # a certificate without any subjectAltName URI, loaded only because application_uri is given
    bare, bare_key = make_client_cert(tmp_path, uri=None, cert_name="bare.crt", key_name="bare.key")
    bare_security = _security(bare, bare_key, "SignAndEncrypt", application_uri="urn:fieldwatch:bare")
    fw.start(
        [_site(("plc", _options(server.url, security=security)), ("bare", _options(server.url, security=bare_security)))],
        policy=fast_policy(),
    )
    status = fw.wait_state("peer", "plc", "faulty", timeout=15)
    assert status.reason is not None and SECURITY_CODE.search(status.reason), status.reason
    bare_status = fw.wait_state("peer", "bare", "faulty", timeout=15)
    assert bare_status.reason is not None and SECURITY_CODE.search(bare_status.reason), bare_status.reason
    peer_version(server.version, f"faulty {status.reason!r}; without SAN URI: faulty {bare_status.reason!r}")


@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="server_cert pinned: the server's own up, another faulty")
def test_server_cert_pinning(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None], tmp_path: Path
) -> None:
    server = node_server(security="SignAndEncrypt", accept=True)
    peer_version(server.version)
    cert, key = make_client_cert(tmp_path)
    impostor, _key = make_client_cert(tmp_path, uri="urn:impostor", cert_name="other.der", key_name="o.key", pem=False)
    own = server.pki / "own" / "certs" / "certificate.pem"
    fw.start(
        [
            _site(
                ("plc", _options(server.url, security=_security(cert, key, "SignAndEncrypt", server_cert=str(own)))),
                ("pinned", _options(server.url, security=_security(cert, key, "SignAndEncrypt", server_cert=str(impostor)))),
            )
        ],
        policy=fast_policy(),
    )
    fw.wait_state("peer", "plc", "up", timeout=15)
    status = fw.wait_state("peer", "pinned", "faulty", timeout=15)
    assert status.reason is not None
    assert "pinned security.server_cert other.der" in status.reason, status.reason
    peer_version(server.version, f"faulty {status.reason!r}")


@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="subscribe: an unchanged value is stored once, not per keep-alive read")
def test_subscribed_steady_value_is_stored_once(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    server = node_server(security="None")
    peer_version(server.version)
    nodes = (
        NodeConfig(STEADY, "steady", mode="subscribe", poll_s=0.2),
        NodeConfig(LEVEL, "level", mode="subscribe", poll_s=0.2),
    )
    # stale_after_s 2: the keep-alive read of the subscribed nodes runs every second
    fw.start([_site(("plc", _options(server.url, nodes=nodes, stale_after_s=2.0)))], policy=fast_policy())
    fw.wait_state("peer", "plc", "up", timeout=15)
    start_ok = fw.status("peer", "plc").counters.get(("opcua_reads", "ok"), 0)
    # at least 4 keep-alive reads of both nodes (8 good values) beyond the notifications
    wait_for(
        lambda: fw.status("peer", "plc").counters.get(("opcua_reads", "ok"), 0) >= start_ok + 8, 10,
        what="keep-alive reads",
    )
    steady = fw.readings("peer", "plc", "steady")
    assert len(steady) == 1, steady
    assert steady[0]["value"] == 7.0
    assert len(fw.readings("peer", "plc", "level")) >= 3  # a changing value is stored as it changes
    assert fw.state("peer", "plc") == "up"


@pytest.mark.peer(protocol="opcua", peer="node-opcua", case="SIGSTOP then SIGKILL: down within bound each time")
def test_frozen_then_killed_server_detected(
    fw: Harness, node_server: Callable[..., PeerProcess], peer_version: Callable[..., None]
) -> None:
    bound = 0.5 + 1.0 + 1.5  # health interval + timeout_s + slack for a loaded machine (SPEC §9)
    server = node_server(security="None")
    fw.start([_site(("plc", _options(server.url, timeout_s=1.0)))], policy=fast_policy())
    fw.wait_state("peer", "plc", "up", timeout=15)
    server.signal(signal.SIGSTOP)
    started = time.monotonic()
    fw.wait_state("peer", "plc", "down", timeout=bound)
    frozen = time.monotonic() - started
    server.signal(signal.SIGCONT)
    fw.wait_state("peer", "plc", "up", timeout=8)
    server.signal(signal.SIGKILL)
    started = time.monotonic()
    fw.wait_state("peer", "plc", "down", timeout=bound)
    killed = time.monotonic() - started
    peer_version(server.version, f"SIGSTOP: down after {frozen:.1f} s; SIGKILL: {killed:.1f} s (bound {bound:g} s)")
