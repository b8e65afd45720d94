"""Certificates and keys read by content (PEM or DER), not by file name: cryptography only.

Kept free of asyncua so the config schema can check a certificate at load
(its subjectAltName URI) without importing the OPC UA stack.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["CertificateError", "certificate_uri", "load_certificate", "load_private_key", "thumbprint"]


class CertificateError(Exception):
    """A certificate or key file that cannot be used; the message names the config key and file."""


_PEM_MARK = b"-----BEGIN"
_MAX_FILE_BYTES = 1 << 20


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as err:
        raise CertificateError(f"security.{key}: {err.strerror or err}: {path}") from err
    if len(data) > _MAX_FILE_BYTES:
        raise CertificateError(f"security.{key}: {path} is larger than 1 MiB")
    return data


def load_certificate(path: str, key: str = "cert") -> x509.Certificate:
    """The X.509 certificate in the file, PEM or DER (told by content, not by the file name)."""
    data = _read(path, key)
    try:
        if _PEM_MARK in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise CertificateError(f"security.{key}: {path} is not a PEM or DER certificate") from err


def load_private_key(path: str) -> PrivateKeyTypes:
    """The unencrypted private key in the file, PEM or DER (PKCS#8 or PKCS#1), told by content."""
    data = _read(path, "key")
    try:
        if _PEM_MARK in data:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except TypeError as err:  # the key is encrypted: fieldwatch has no key password setting
        raise CertificateError(f"security.key: {path} is encrypted; give an unencrypted key") from err
    except ValueError as err:
        raise CertificateError(f"security.key: {path} is not a PEM or DER private key") from err


def certificate_uri(cert: x509.Certificate) -> str | None:
    """The first URI in the certificate's subjectAltName (its OPC UA application URI), if any."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None


def thumbprint(cert: x509.Certificate) -> str:
    """The SHA-1 thumbprint OPC UA servers show for a certificate (hex, lower case)."""
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324 - OPC UA's
