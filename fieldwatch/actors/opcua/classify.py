"""Map an exception from an OPC UA connection attempt or request to a state and a reason.

`faulty` means retrying will not help until someone fixes something (the URL,
the endpoint path, DNS, credentials, certificates, the security settings);
`down` means the server or the network is not answering right now.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from asyncua import ua
from asyncua.ua import status_codes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from fieldwatch import ledger
from fieldwatch.errors import FieldwatchError
from fieldwatch.states import DOWN, FAULTY

__all__ = ["Failure", "SessionError", "classify", "hint", "status_failure", "status_name"]

#: Status codes a server answers when the request can never succeed as configured.
_FAULTY_CODES: frozenset[str] = frozenset(
    {
        "BadTcpEndpointUrlInvalid",
        "BadUserAccessDenied",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
        "BadIdentityChangeNotSupported",
        "BadSecurityChecksFailed",
        "BadSecurityPolicyRejected",
        "BadSecurityModeRejected",
        "BadSecurityModeInsufficient",
        "BadNoValidCertificates",
        "BadApplicationSignatureInvalid",
        "BadUserSignatureInvalid",
        "BadServerUriInvalid",
        "BadProtocolVersionUnsupported",
        "BadNonceInvalid",
        "BadRequestTypeInvalid",
        "BadNotSupported",
    }
)

#: A short operator hint per status code a server answers while connecting (shown after the code).
_HINTS: dict[str, str] = {
    "BadCertificateUntrusted": "the server does not trust our certificate; trust it on the server",
    "BadSecurityChecksFailed": (
        "the server refused our certificate or security settings; trust our certificate on the server"
    ),
    "BadCertificateUriInvalid": (
        "the application URI does not match the certificate's subjectAltName URI; "
        "fix security.application_uri or the certificate"
    ),
    "BadCertificateUseNotAllowed": (
        "the server does not accept our certificate for this use (key usage, subjectAltName)"
    ),
    "BadCertificateTimeInvalid": "our certificate has expired or is not valid yet (check clocks)",
    "BadCertificateHostNameInvalid": "the certificate's host name does not match",
    "BadCertificateRevoked": "our certificate was revoked",
    "BadCertificateInvalid": "a certificate could not be used (malformed, or it does not match its key)",
    "BadCertificateIssuerRevocationUnknown": "the server cannot check the revocation list of our certificate's issuer",
    "BadCertificateRevocationUnknown": "the server cannot check the revocation list for our certificate",
    "BadCertificateChainIncomplete": "the server lacks an issuer certificate of our certificate",
    "BadSecurityPolicyRejected": "the server does not offer this security policy",
    "BadSecurityModeRejected": "the server does not offer this security mode",
    "BadUserAccessDenied": "the server refused the user name or password",
    "BadIdentityTokenRejected": "the server refused the user name or password",
    "BadIdentityTokenInvalid": "the server does not accept this kind of login (anonymous or user name)",
    "BadTooManySessions": "the server has no free session; close other clients or raise its limit",
    "BadNonceInvalid": "the server refused the channel's nonce (security policy mismatch?)",
    "BadApplicationSignatureInvalid": "the server could not verify our signature (certificate and key mismatch?)",
}


@dataclass(frozen=True, slots=True)
class Failure(ledger.Failure):
    """Why an OPC UA connection or request failed: the generic `Failure` with the server's detail.

    `reason` starts with the server's status code name (``BadUserAccessDenied: ...``)
    or is the OS error text (``[Errno -2] Name or service not known``); `code` is
    that status code name alone ("" when the server said none); `offered` holds
    the endpoint URLs the server offers when the failure is about the endpoint path.
    """

    exc_type: str | None = "SessionError"
    offered: tuple[str, ...] = ()
    code: str = ""

    @property
    def message(self) -> str:
        """The reason, followed by the offered endpoint URLs when there are any."""
        if not self.offered:
            return self.reason
        return f"{self.reason}; the server offers: {', '.join(self.offered)}"


class SessionError(FieldwatchError):
    """An OPC UA operation failed; `failure` says whether the endpoint is faulty or down and why."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def status_name(code: int | ua.StatusCode | None) -> str:
    """The symbolic name of an OPC UA status code (``Good`` for None)."""
    if code is None:
        return "Good"
    value = code.value if isinstance(code, ua.StatusCode) else int(code)
    name, _doc = status_codes.get_name_and_doc(value)
    return str(name)


def hint(code: str) -> str:
    """The operator hint for a status code ("" when there is none)."""
    return _HINTS.get(code, "")


def status_failure(code: str, step: str = "") -> Failure:
    """The failure a status code from the server means: ``Code: hint (during step)``."""
    text = code
    if hint(code):
        text = f"{code}: {hint(code)}"
    if step:
        text = f"{text} (during {step})"
    return Failure(FAULTY if _is_faulty_code(code) else DOWN, text, code=code)


def _is_faulty_code(name: str) -> bool:
    return name in _FAULTY_CODES or name.startswith("BadCertificate")


def _os_text(exc: OSError) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def classify(exc: BaseException) -> Failure:
    """The failure an exception means: `faulty` for configuration/permanent errors, else `down`."""
    failure = getattr(exc, "failure", None)
    if isinstance(failure, Failure):  # already classified (SessionError)
        return failure
    if isinstance(exc, UaStatusCodeError):
        return status_failure(status_name(exc.code))
    if isinstance(exc, socket.gaierror):
        # The host name does not resolve: fixing DNS or the URL is the operator's job.
        return Failure(FAULTY, _os_text(exc))
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        # A local certificate or key file that cannot be read.
        return Failure(FAULTY, _os_text(exc))
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        text = str(exc)
        return Failure(DOWN, text if text else "timed out")
    if isinstance(exc, OSError):  # refused, reset, unreachable, ...
        return Failure(DOWN, _os_text(exc))
    if isinstance(exc, EOFError):
        return Failure(DOWN, "connection closed by the server")
    if isinstance(exc, UaError):
        # e.g. "No matching endpoints" for a security policy/mode the server does not offer.
        return Failure(FAULTY, str(exc) or type(exc).__name__)
    if isinstance(exc, ValueError):
        return Failure(FAULTY, f"invalid URL or setting: {exc}")
    return Failure(DOWN, f"{type(exc).__name__}: {exc}")
