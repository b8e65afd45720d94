"""What an MQTT connection's outcome is called: the reason codes, and naming a failure by what happened.

`MqttClient` reports every outcome as (code, reason): an MQTT reason code (v3.1.1
CONNACK codes 1-5 for a refused v3.1.1 connection) or one of the negative RC_*
codes below, which no broker sends. The functions here turn what the client saw
(an exception from connect, a CONNACK, a DISCONNECT, a link closed before CONNACK)
into that pair (STYLE rule 12: name the failure by what the peer said).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from fieldwatch.actors.mqtt.buffered import BufferedSocket
from fieldwatch.actors.mqtt.tls import (
    TLS_CLIENT_CERT_HINT,
    TlsLike,
    alert_text,
    certificate_alert,
    probe_tls_session,
    speaks_tls,
)

__all__ = [
    "AUTH_FAILURES",
    "PROTOCOL_V311",
    "PROTOCOL_V5",
    "RC_CONNECT_FAILED",
    "RC_KEEPALIVE_TIMEOUT",
    "RC_TLS_EXPECTED",
    "RC_TLS_FAILED",
    "RC_UNRESOLVED",
    "closed_before_connack",
    "connack_code",
    "connect_failure",
    "disconnect_text",
    "is_auth_failure",
    "is_permanent_failure",
]

PROTOCOL_V311 = int(MQTTProtocolVersion.MQTTv311)
PROTOCOL_V5 = int(MQTTProtocolVersion.MQTTv5)

# Client-side outcomes (negative: never sent by a broker).
RC_CONNECT_FAILED = -1  # TCP connect refused / timed out, or no CONNACK in time
RC_UNRESOLVED = -2  # the host name does not resolve
RC_TLS_FAILED = -3  # TLS files unreadable, handshake or certificate verification failed, client cert refused
RC_TLS_EXPECTED = -4  # plain TCP to a port that answers a TLS handshake
#: MQTT v5 "Keep alive timeout"; also what the watchdog reports for a silent broker.
RC_KEEPALIVE_TIMEOUT = 141

#: CONNACK codes for rejected credentials: v3.1.1 (4, 5) and v5 (134, 135).
AUTH_FAILURES: frozenset[int] = frozenset({4, 5, 134, 135})
_PERMANENT: frozenset[int] = AUTH_FAILURES | {1, 2, 132, 133, 138, RC_UNRESOLVED, RC_TLS_FAILED, RC_TLS_EXPECTED}
_V311_CONNACK = {
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}


def is_auth_failure(code: int) -> bool:
    """True when a CONNACK code means the credentials were rejected."""
    return code in AUTH_FAILURES


def is_permanent_failure(code: int) -> bool:
    """True for failures retrying will not fix (credentials, client id, protocol, DNS, TLS): `faulty`."""
    return code in _PERMANENT


def connect_failure(err: OSError | ValueError, host: str, target: str) -> tuple[int, str]:
    """The (code, reason) of an exception from the blocking TCP/TLS connect to target ("host:port")."""
    if isinstance(err, socket.gaierror):
        return RC_UNRESOLVED, f"host {host!r} does not resolve: {err}"
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        hint = f"{TLS_CLIENT_CERT_HINT} " if certificate_alert(err) else ""
        return RC_TLS_FAILED, f"{hint}TLS with {target} failed: {err}"
    if isinstance(err, FileNotFoundError):
        return RC_TLS_FAILED, f"TLS file missing: {err}"
    return RC_CONNECT_FAILED, f"connect to {target} failed: {err}"


def connack_code(reason: ReasonCode, protocol: int) -> int:
    """The code of a refusing CONNACK: v3.1.1's own 1-5 for a v3.1.1 connection (paho maps them to v5's)."""
    if protocol == PROTOCOL_V311:
        return _V311_CONNACK.get(reason.getName(), reason.value)
    return int(reason.value)


def disconnect_text(reason: ReasonCode, flags: Any) -> str:
    """The reason of a disconnect: the broker's DISCONNECT, or a lost socket."""
    text = reason.getName()
    from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
    if not from_broker and reason.value == 128:
        return "connection lost (socket closed)"
    if from_broker:
        return f"broker sent DISCONNECT: {text}"
    return text


def closed_before_connack(text: str, host: str, port: int, tls: TlsLike | None, sock: BufferedSocket | None,
                          probe_s: float) -> tuple[int, str]:  # fmt: skip
    """Classify a link the broker ended before its CONNACK by what it said (STYLE rule 12).

    With TLS: a broker that ends the session right after the handshake, when we
    offered no client certificate or it sent a TLS alert, is refusing our
    certificate (with TLS 1.3 the client side of the handshake completes before the
    server checks it). Without TLS: a port that answers a TLS handshake wants TLS.
    """
    if tls is not None:
        alert = alert_text(sock.error if sock is not None else None)
        if not alert:  # paho's CONNECT made the broker reset the link, alert and all: ask again
            probed = probe_tls_session(host, port, tls, probe_s)
            if probed is None:  # it waits for a CONNECT (or is gone): not a refusal of our TLS identity
                return RC_CONNECT_FAILED, f"{text} (after the TLS handshake)"
            alert = probed
        return RC_TLS_FAILED, f"{TLS_CLIENT_CERT_HINT}{f' TLS alert: {alert}' if alert else ''} ({text})"
    if (sock is None or not sock.received) and speaks_tls(host, port, probe_s):
        return RC_TLS_EXPECTED, (f"the port answers a TLS handshake: the broker expects TLS, configure tls: "
                                 f"for this endpoint ({text})")  # fmt: skip
    return RC_CONNECT_FAILED, text
