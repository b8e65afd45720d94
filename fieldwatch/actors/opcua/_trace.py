"""What the OPC UA server said while we connected: the handshake step and its last message.

asyncua loses the server's own words in places: a ServiceFault answering
OpenSecureChannel (node-opcua refusing our certificate) ends in an internal
``AssertionError``, and an ErrorMessage's reason text is only logged. A
`PeerTrace` hooks one client (its step methods and the protocol's message
dispatch) so a failure can be reported by what the server said and at which
step (STYLE.md rule 12), never by a library exception type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UASocketProtocol
from asyncua.ua.ua_binary import nodeid_from_binary, struct_from_binary
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from fieldwatch.actors.opcua.classify import Failure, classify, status_failure, status_name
from fieldwatch.states import DOWN

__all__ = ["PeerTrace"]

#: Client methods that are one step of the handshake, and the step's name for the operator.
_STEPS = (
    ("connect_socket", "TCP connect"),
    ("send_hello", "Hello"),
    ("open_secure_channel", "open secure channel"),
    ("create_session", "create session"),
    ("activate_session", "activate session"),
    ("get_endpoints", "get endpoints"),
)
_MAX_TEXT = 200


def _message_name(typeid: ua.NodeId) -> str:
    name = ua.ObjectIdNames.get(typeid.Identifier, str(typeid)) if isinstance(typeid.Identifier, int) else ""
    return str(name).removesuffix("_Encoding_DefaultBinary") or "a message of an unknown type"


class PeerTrace:
    """One client's handshake step and the server's last message (loop thread only)."""

    def __init__(self, client: Client) -> None:
        self.step = "TCP connect"
        self.last = ""  # the server's last message, described for the operator
        self.status = ""  # a Bad status code the server sent (ErrorMessage or ServiceFault)
        self.detail = ""  # the server's own reason text, when it sent one
        self.closed = False  # the server closed the connection
        for attr, step in _STEPS:
            setattr(client, attr, self._stepper(step, getattr(client, attr)))  # instance attribute wins
        uaclient = client.uaclient
        make_protocol = uaclient._make_protocol  # no public hook on the protocol asyncua creates
        uaclient._make_protocol = lambda: self._hook(make_protocol())  # type: ignore[method-assign]

    def _stepper(self, step: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(*args: Any, **kwargs: Any) -> Any:
            self.step, self.status, self.detail = step, "", ""
            return await method(*args, **kwargs)

        return run

    def _hook(self, protocol: UASocketProtocol) -> UASocketProtocol:
        process = protocol._process_received_message
        lost = protocol.on_connection_lost

        def observe(msg: Any) -> None:
            self._observe(msg)
            process(msg)

        def on_lost(exc: Exception | None) -> None:
            self.closed = True
            if lost is not None:
                lost(exc)

        protocol._process_received_message = observe  # type: ignore[method-assign]
        protocol.on_connection_lost = on_lost
        return protocol

    def _observe(self, msg: Any) -> None:
        """Describe one message from the server; never raises (it runs inside asyncua's parser)."""
        try:
            if isinstance(msg, ua.ErrorMessage):
                self.status = status_name(msg.Error)
                self.detail = str(msg.Reason or "")[:_MAX_TEXT]
                self.last = f"ErrorMessage {self.status}" + (f" {self.detail!r}" if self.detail else "")
            elif isinstance(msg, ua.Acknowledge):
                self.last = "Acknowledge"
            elif isinstance(msg, ua.Message):
                body = msg.body()
                typeid = nodeid_from_binary(body)
                if typeid.NamespaceIndex == 0 and typeid.Identifier == ua.ObjectIds.ServiceFault_Encoding_DefaultBinary:
                    header = struct_from_binary(ua.ResponseHeader, body)
                    self.status = status_name(header.ServiceResult)
                    self.last = f"ServiceFault {self.status}"
                else:
                    self.last = _message_name(typeid)
        except Exception as err:  # noqa: BLE001 - a message we cannot describe is still a message
            self.last = f"a message that could not be decoded ({err})"[:_MAX_TEXT]

    def explain(self, err: BaseException, request: str = "") -> Failure:
        """The failure `err` means, in the server's terms where it said any.

        Without `request` `err` ended the handshake (at `step`); with it, `err`
        ended that request (``read``, ``health read``) of an established session.
        """
        known = getattr(err, "failure", None)
        if isinstance(known, Failure):
            return known
        step = request or self.step
        if isinstance(err, UaStatusCodeError):
            code = status_name(err.code)
            return self._with_detail(status_failure(code, "" if request else step), code)
        if not request and self.status.startswith("Bad"):  # the server said why; asyncua lost it
            return self._with_detail(status_failure(self.status, step), self.status)
        if isinstance(err, (asyncio.TimeoutError, TimeoutError)):
            return Failure(DOWN, f"no answer to {step} within the timeout{self._said()}")
        if isinstance(err, (OSError, ValueError, UaError)) and not (
            isinstance(err, (ConnectionError, EOFError)) and step != "TCP connect"
        ):
            return classify(err)  # OS errors, DNS, unreadable files, settings the server does not offer
        if self.closed or isinstance(err, (ConnectionError, EOFError)):
            return Failure(DOWN, f"the server closed the connection during {step}{self._said()}")
        text = str(err).strip()[:_MAX_TEXT]
        detail = f" ({text})" if text else ""
        return Failure(DOWN, f"{step} failed{detail}{self._said()}")

    def _with_detail(self, failure: Failure, code: str) -> Failure:
        if not self.detail or code != self.status:
            return failure
        return Failure(failure.state, f"{failure.reason}; the server said: {self.detail}", code=code)

    def _said(self) -> str:
        return f"; the server's last message: {self.last}" if self.last else "; the server sent nothing"
