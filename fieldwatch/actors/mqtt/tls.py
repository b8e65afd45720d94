"""Naming a TLS refusal by what the broker said (STYLE rule 12), for a link that ended before CONNACK.

With TLS 1.3 the client's side of the handshake completes before the server has
checked the client certificate; a broker that wants one (Mosquitto
`require_certificate true`) or refuses ours then sends an alert and closes. paho
has sent CONNECT by then, so the alert often drowns in the TCP reset our unread
CONNECT causes. `probe_tls_session` asks again without sending anything: the alert
arrives intact, or the broker waits for a CONNECT (it accepts our TLS identity).
`speaks_tls` tells a TLS port from a plain one when a plain connection is refused.
"""

from __future__ import annotations

import socket
import ssl
from typing import Protocol

__all__ = ["TLS_CLIENT_CERT_HINT", "TlsLike", "certificate_alert", "probe_tls_session", "speaks_tls"]

#: The reason given when a broker ends a TLS session before CONNACK (SPEC §4 `faulty`).
TLS_CLIENT_CERT_HINT = "broker closed the connection after TLS: client certificate required or refused?"
_CERTIFICATE_ALERTS = ("CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE", "ACCESS_DENIED")


class TlsLike(Protocol):
    """TLS settings (fieldwatch.actors.mqtt.schema.TlsConfig fits)."""

    @property
    def ca(self) -> str | None: ...
    @property
    def cert(self) -> str | None: ...
    @property
    def key(self) -> str | None: ...
    @property
    def insecure(self) -> bool: ...


def alert_text(err: BaseException | None) -> str:
    """The verbatim text of a TLS alert the peer sent ('' when err is not one)."""
    if isinstance(err, ssl.SSLError) and "ALERT" in (err.reason or ""):
        return str(err)
    return ""


def certificate_alert(err: BaseException) -> bool:
    """True for a TLS alert from the peer about certificates (it refused ours, or wants one)."""
    reason = getattr(err, "reason", None) or ""
    return "ALERT" in reason and any(word in reason for word in _CERTIFICATE_ALERTS)


def speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    """Whether host:port answers a TLS handshake (completes it, or answers with a TLS alert)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as err:
        return bool(alert_text(err))
    except OSError:
        return False


def probe_tls_session(host: str, port: int, tls: TlsLike, timeout_s: float) -> str | None:
    """Open a TLS session as fieldwatch does, send nothing, and listen.

    Returns the broker's alert text, '' when it closed without one (it refused the
    session all the same), or None when it waited for our CONNECT (it accepts us) or
    the probe itself failed (then nothing is known).
    """
    try:
        context = ssl.create_default_context(cafile=tls.ca)
        if tls.cert:
            context.load_cert_chain(tls.cert, tls.key)
        if tls.insecure:
            context.check_hostname = False
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            with context.wrap_socket(raw, server_hostname=host) as session:
                try:
                    data = session.recv(1)
                except TimeoutError:
                    return None  # waiting for our CONNECT: the TLS identity is accepted
                return "" if not data else None
    except ssl.SSLError as err:
        text = alert_text(err)
        if text:
            return text
        return "" if isinstance(err, ssl.SSLEOFError) else None
    except (ConnectionResetError, BrokenPipeError):
        return ""
    except (OSError, ValueError):
        return None
