"""Failures without a status code are told by the handshake step and the server's last message.

The peer here is a raw TCP server that speaks just enough OPC UA TCP (Hello ->
Acknowledge or ErrorMessage) and then misbehaves the way servers do: it closes
the connection without a word, or refuses with an ErrorMessage and a reason.
Real servers do this (a gateway at its connection limit, a server that drops
clients it does not like); no real server we can start does it on demand.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from asyncua import ua
from asyncua.ua.ua_binary import uatcp_to_binary

from fieldwatch.actors.opcua.classify import status_failure
from fieldwatch.actors.opcua.session import OpcuaSession, SessionError
from tests.actors.opcua.opcua_sim import close, done


def _read_message(conn: socket.socket) -> bytes:
    header = conn.recv(8, socket.MSG_WAITALL)
    if len(header) < 8:
        return b""
    size = struct.unpack("<I", header[4:8])[0]
    return header + conn.recv(size - 8, socket.MSG_WAITALL)


class RawServer:
    """Answers each connection's Hello with `reply`, then closes after the next message (or at once)."""

    def __init__(self, reply: bytes, close_after_reply: bool) -> None:
        self.reply, self.close_after_reply = reply, close_after_reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"opc.tcp://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return  # closed by the test
            with conn:
                if _read_message(conn):
                    conn.sendall(self.reply)
                    if not self.close_after_reply:
                        _read_message(conn)  # the OpenSecureChannel request: no answer, just close

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def raw_server() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    yield servers
    for server in servers:
        server.close()


def _failure(url: str) -> SessionError:
    session = OpcuaSession(url, timeout_s=2.0)
    try:
        with pytest.raises(SessionError) as info:
            done(session.connect_nowait())
    finally:
        close(session)
    return info.value


def test_silent_close_names_the_step_and_the_last_message(raw_server: list[RawServer]) -> None:
    ack = ua.Acknowledge(ProtocolVersion=0, ReceiveBufferSize=65536, SendBufferSize=65536)
    server = RawServer(uatcp_to_binary(ua.MessageType.Acknowledge, ack), close_after_reply=False)
    raw_server.append(server)
    failure = _failure(server.url).failure
    assert failure.state == "down"
    assert failure.reason == (
        "the server closed the connection during open secure channel; the server's last message: Acknowledge"
    )


def test_error_message_status_and_reason_reach_the_reason(raw_server: list[RawServer]) -> None:
    error = ua.ErrorMessage(ua.StatusCode(ua.StatusCodes.BadTcpServerTooBusy), "connection limit reached")
    server = RawServer(uatcp_to_binary(ua.MessageType.Error, error), close_after_reply=True)
    raw_server.append(server)
    failure = _failure(server.url).failure
    assert failure.state == "down"
    assert failure.code == "BadTcpServerTooBusy"
    assert failure.reason == "BadTcpServerTooBusy (during Hello); the server said: connection limit reached"


def test_security_status_in_error_message_is_faulty_with_hint(raw_server: list[RawServer]) -> None:
    error = ua.ErrorMessage(ua.StatusCode(ua.StatusCodes.BadCertificateUntrusted), "")
    server = RawServer(uatcp_to_binary(ua.MessageType.Error, error), close_after_reply=True)
    raw_server.append(server)
    failure = _failure(server.url).failure
    assert failure.state == "faulty"
    assert failure.reason == (
        "BadCertificateUntrusted: the server does not trust our certificate; trust it on the server (during Hello)"
    )


@pytest.mark.parametrize(
    "code",
    [
        "BadCertificateUntrusted", "BadCertificateUriInvalid", "BadCertificateUseNotAllowed",
        "BadCertificateTimeInvalid", "BadCertificateRevoked", "BadSecurityChecksFailed",
        "BadSecurityPolicyRejected", "BadIdentityTokenRejected", "BadIdentityTokenInvalid", "BadUserAccessDenied",
    ],
)
def test_security_and_identity_codes_are_faulty_verbatim(code: str) -> None:
    failure = status_failure(code, "activate session")
    assert failure.state == "faulty" and failure.code == code
    assert failure.reason.startswith(f"{code}: ") and failure.reason.endswith(" (during activate session)")


def test_other_codes_are_down_verbatim() -> None:
    failure = status_failure("BadServerHalted")
    assert (failure.state, failure.reason, failure.code) == ("down", "BadServerHalted", "BadServerHalted")
