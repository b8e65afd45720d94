"""OPC UA security settings: cert/key told by content, application_uri from the certificate or the config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fieldwatch.actors.opcua._certs import CertificateError, certificate_uri, load_certificate, load_private_key
from fieldwatch.actors.opcua.schema import OpcuaOptions, SecurityConfig
from fieldwatch.actors.opcua.session import OpcuaSession, SessionError
from fieldwatch.config import load_config
from fieldwatch.errors import ConfigError
from tests.actors.opcua.opcua_sim import close, done, free_port
from tests.opcua_certs import make_client_cert

CONFIG = """\
sites:
  - name: lutete
    endpoints:
      - name: plc
        kind: opcua
        url: opc.tcp://10.0.0.5:4840
        security:
          policy: Basic256Sha256
          cert: {cert}
          key: {key}
{extra}"""


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run in tmp_path, so config errors start with the relative file name."""
    before = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(before)


def _load(folder: Path, cert: Path, key: Path, extra: str = "") -> OpcuaOptions:
    (folder / "fieldwatch.yaml").write_text(CONFIG.format(cert=cert.name, key=key.name, extra=extra))
    options = load_config("fieldwatch.yaml", env={}).sites[0].endpoints[0].options
    assert isinstance(options, OpcuaOptions)
    return options


@pytest.mark.parametrize("pem", [True, False])
def test_cert_and_key_told_by_content_not_suffix(tmp_path: Path, pem: bool) -> None:
    # the suffix says the opposite of the content: asyncua alone would pick the wrong loader
    names = ("client.der", "client_key.der") if pem else ("client.pem", "client.key.pem")
    cert_path, key_path = make_client_cert(tmp_path, uri="urn:x:y", cert_name=names[0], key_name=names[1], pem=pem)
    cert = load_certificate(str(cert_path))
    assert certificate_uri(cert) == "urn:x:y"
    key = load_private_key(str(key_path))
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_unusable_files_name_the_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match=r"^security.cert: .*junk.pem is not a PEM or DER certificate"):
        load_certificate(str(junk))
    with pytest.raises(CertificateError, match=r"^security.key: .*junk.pem is not a PEM or DER private key"):
        load_private_key(str(junk))
    with pytest.raises(CertificateError, match=r"^security.server_cert: No such file"):
        load_certificate(str(tmp_path / "missing.der"), "server_cert")
    cert, _key = make_client_cert(tmp_path, uri=None)
    assert certificate_uri(x509.load_pem_x509_certificate(cert.read_bytes())) is None


def test_certificate_without_san_uri_needs_application_uri(in_tmp: Path) -> None:
    cert, key = make_client_cert(in_tmp, uri=None)
    with pytest.raises(ConfigError) as info:
        _load(in_tmp, cert, key)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("fieldwatch.yaml:7: sites[0].endpoints[0].security.application_uri: required")
    assert "no subjectAltName URI" in info.value.errors[0]
    options = _load(in_tmp, cert, key, "          application_uri: urn:plant:fieldwatch\n")
    assert options.security.application_uri == "urn:plant:fieldwatch"


def test_application_uri_defaults_to_the_certificates(in_tmp: Path) -> None:
    cert, key = make_client_cert(in_tmp, uri="urn:plant:fieldwatch-gw1")
    options = _load(in_tmp, cert, key)
    assert options.security.application_uri is None  # taken from the certificate at connect
    assert options.security.cert == str(in_tmp / "client.crt")


def test_runtime_certificate_without_san_uri_is_faulty_naming_the_key(tmp_path: Path) -> None:
    # endpoints created through the API are checked again at connect, before any network I/O
    cert, key = make_client_cert(tmp_path, uri=None)
    security = SecurityConfig("Basic256Sha256", "SignAndEncrypt", str(cert), str(key))
    session = OpcuaSession(f"opc.tcp://127.0.0.1:{free_port()}", timeout_s=2.0, security=security)
    with pytest.raises(SessionError) as info:
        done(session.connect_nowait())
    assert info.value.failure.state == "faulty"
    assert info.value.failure.reason.startswith("security.application_uri: not set")
    close(session)
