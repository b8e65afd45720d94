"""The client's certificate, key and application URI: read by content (PEM or DER), then applied.

asyncua tells PEM from DER by the file name's suffix, so an ordinary PEM
``client.key`` failed as "Could not deserialize key data". We read the bytes
ourselves, tell the format by content, and hand asyncua DER. The application
URI we announce in CreateSession must equal the certificate's subjectAltName
URI (servers answer ``BadCertificateUriInvalid`` otherwise): it defaults to
that URI, and a certificate without one needs ``security.application_uri``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.crypto.uacrypto import CertProperties
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fieldwatch.actors.opcua._certs import (
    CertificateError,
    certificate_uri,
    load_certificate,
    load_private_key,
    thumbprint,
)
from fieldwatch.actors.opcua.classify import Failure
from fieldwatch.states import FAULTY

__all__ = ["SecurityRejected", "apply_security", "pin_mismatch"]


class SecurityRejected(Exception):
    """The security settings cannot be applied (unknown policy/mode, unusable files): a faulty config."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def _der(cert: x509.Certificate) -> CertProperties:
    return CertProperties(cert.public_bytes(serialization.Encoding.DER), extension="der")


async def apply_security(client: Client, security: Any) -> None:
    """Configure a security policy (Basic256Sha256, ...) from a SecurityConfig-like object."""
    policy = str(getattr(security, "policy", None) or "None")
    if policy == "None":
        return
    policy_class = getattr(security_policies, "SecurityPolicy" + policy.replace("_", ""), None)
    if policy_class is None:
        raise SecurityRejected(Failure(FAULTY, f"unknown security policy {policy!r}"))
    mode_name = str(getattr(security, "mode", None) or "SignAndEncrypt")
    mode = getattr(ua.MessageSecurityMode, mode_name, None)
    if mode is None:
        raise SecurityRejected(Failure(FAULTY, f"unknown security mode {mode_name!r}"))
    cert_path, key_path = getattr(security, "cert", None), getattr(security, "key", None)
    if not cert_path or not key_path:
        raise SecurityRejected(Failure(FAULTY, f"security policy {policy} needs cert and key"))
    try:
        cert = load_certificate(str(cert_path))
        key = load_private_key(str(key_path))
        server_path = getattr(security, "server_cert", None)
        server = _der(load_certificate(str(server_path), "server_cert")) if server_path else None
    except CertificateError as err:
        raise SecurityRejected(Failure(FAULTY, str(err))) from err
    uri = getattr(security, "application_uri", None) or certificate_uri(cert)
    if not uri:
        raise SecurityRejected(
            Failure(
                FAULTY,
                f"security.application_uri: not set, and the certificate {Path(str(cert_path)).name} "
                "has no subjectAltName URI to take it from",
            )
        )
    client.application_uri = uri
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    await client.set_security(
        policy_class, _der(cert), CertProperties(key_der, extension="der"), server_certificate=server, mode=mode
    )


def pin_mismatch(security: Any, offered: list[ua.EndpointDescription]) -> Failure | None:
    """A faulty failure when the server offers certificates and none is the pinned `server_cert`.

    Asked after a handshake failed with `server_cert` set: a server presenting
    another certificate cannot decrypt what we encrypted for the pinned one, and
    says so only as an internal error (node-opcua: BadTcpInternalError).
    """
    path = getattr(security, "server_cert", None)
    if not path or str(getattr(security, "policy", "None")) == "None":
        return None
    try:
        pinned = thumbprint(load_certificate(str(path), "server_cert"))
    except CertificateError as err:
        return Failure(FAULTY, str(err))
    seen: list[str] = []
    for endpoint in offered:
        if not endpoint.ServerCertificate:
            continue
        try:
            seen.append(thumbprint(x509.load_der_x509_certificate(_first_der(endpoint.ServerCertificate))))
        except ValueError:
            continue
    if not seen or pinned in seen:
        return None
    return Failure(
        FAULTY,
        f"the server presents a certificate (SHA-1 thumbprint {seen[0]}) other than the pinned "
        f"security.server_cert {Path(str(path)).name} ({pinned}); update server_cert if the server's "
        "certificate was renewed",
    )


def _first_der(chain: bytes) -> bytes:
    """The first DER certificate of a chain (a SEQUENCE with a long-form length, as certificates are)."""
    if len(chain) < 4 or chain[0] != 0x30 or not chain[1] & 0x80:
        return chain
    size_len = chain[1] & 0x7F
    length = int.from_bytes(chain[2 : 2 + size_len], "big")
    return chain[: 2 + size_len + length]
