"""Test certificates (cryptography): a CA, a server certificate for 127.0.0.1, client certificates.

`make_pki(dir)` writes PEM files and returns their paths: the broker's CA and server
pair, a client pair signed by that CA, and a "foreign" CA with its own client pair
(a certificate the broker must refuse).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Pki", "make_pki"]


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files made by make_pki."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    foreign_ca: Path
    foreign_cert: Path
    foreign_key: Path
    wrong_host_cert: Path
    wrong_host_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
           *, ca: bool = False, san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return _issue(common, key, _name(common), key, ca=True), key


def make_pki(directory: Path) -> Pki:
    """Write a CA, a server pair for 127.0.0.1/localhost, a client pair, a foreign CA with its client pair,
    and a server pair (same CA) for another host name."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("fieldwatch test CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("127.0.0.1", server_key, ca.subject, ca_key,
                    san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("fieldwatch", client_key, ca.subject, ca_key)
    foreign, foreign_ca_key = _ca("somebody else's CA")
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    foreign_client = _issue("fieldwatch", foreign_key, foreign.subject, foreign_ca_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _issue("broker.other.invalid", other_key, ca.subject, ca_key,
                   san=[x509.DNSName("broker.other.invalid")])
    return Pki(
        ca=_write_cert(ca, directory / "ca.pem"),
        server_cert=_write_cert(server, directory / "server.pem"),
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=_write_cert(client, directory / "client.pem"),
        client_key=_write_key(client_key, directory / "client.key"),
        foreign_ca=_write_cert(foreign, directory / "foreign-ca.pem"),
        foreign_cert=_write_cert(foreign_client, directory / "foreign-client.pem"),
        foreign_key=_write_key(foreign_key, directory / "foreign-client.key"),
        wrong_host_cert=_write_cert(other, directory / "other-host.pem"),
        wrong_host_key=_write_key(other_key, directory / "other-host.key"),
    )
