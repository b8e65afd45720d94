"""One abusive client against a real waitress: connection floods, slow requests, big bodies (issue 14 items 1, 5, 7)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from fieldwatch.http import AppDeps, HttpServer, create_app, serve
from fieldwatch.http.server import Limits
from tests.httpapi.httpapi_fakes import TOKEN, make_deps
from tests.waiting import wait_for


def _healthz_seconds(server: HttpServer, timeout_s: float = 1.0) -> float:
    """Seconds one GET /healthz took on a new connection (raises on a timeout, fails on non-200)."""
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout_s)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
    finally:
        conn.close()
    return time.monotonic() - began


def _raw(server: HttpServer, data: bytes = b"", timeout_s: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s)
    if data:
        sock.sendall(data)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one whole response (the server closes after it, or sends Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def guarded(deps: AppDeps) -> Iterator[HttpServer]:
    """The app on waitress with a short whole-request deadline."""
    running = serve(create_app(deps), "127.0.0.1:0", threads=4, limits=Limits(request_timeout_s=1.0))
    yield running
    running.stop()


def test_healthz_answers_under_150_idle_and_slow_sockets(guarded: HttpServer) -> None:
    """Item 1: 75 idle and 75 trickling sockets from 127.0.0.1; /healthz from the same address within 1 s."""
    socks = [_raw(guarded) for _ in range(75)]
    socks += [_raw(guarded, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(75)]
    try:
        timings = [_healthz_seconds(guarded) for _ in range(20)]
        for sock in socks[75::5]:  # the slow ones keep trickling; the server still answers
            try:
                sock.send(b"a")
            except OSError:
                pass  # closed to make room: that is the point
        timings += [_healthz_seconds(guarded) for _ in range(20)]
    finally:
        for sock in socks:
            sock.close()
    assert max(timings) < 1.0, timings


def test_oldest_unserved_connection_is_the_one_closed(deps: AppDeps) -> None:
    """Past the per-client limit the oldest idle connection goes; one being served (a stream) stays."""
    running = serve(create_app(deps), "127.0.0.1:0", threads=4, limits=Limits(per_client=8))
    try:
        stream = _raw(running, b"GET /api/v1/events?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = _response(stream)
        assert status == 200
        idle = [_raw(running) for _ in range(20)]
        wait_for(lambda: _closed_by_server(idle[0]))
        stream.settimeout(2.0)
        assert stream.recv(100), "the followed stream was closed"  # heartbeats keep coming
        assert _healthz_seconds(running) < 1.0
        for sock in [stream, *idle]:
            sock.close()
    finally:
        running.stop()


def test_a_request_trickling_slower_than_the_deadline_is_closed(guarded: HttpServer) -> None:
    """Item 1: a byte every 0.2 s keeps waitress's idle timer fresh; the whole-request deadline (1 s) still ends it."""
    sock = _raw(guarded, b"GET /healthz HTTP/1.1\r\n")
    began = time.monotonic()
    closed = False
    while time.monotonic() - began < 5.0 and not closed:
        try:
            sock.send(b"X")
        except OSError:
            closed = True
            break
        sock.settimeout(0.2)
        try:
            closed = sock.recv(100) == b""
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    sock.close()
    assert closed, "the slow request was never closed"
    assert time.monotonic() - began < 4.0


def test_streams_past_their_limit_get_503_and_lose_the_socket(log_file: str) -> None:
    """Item 1: 200 follow clients that keep their sockets: past the stream limit each gets a 503 with
    Retry-After and loses its connection; /healthz answers meanwhile."""
    deps = make_deps(log_file=log_file, max_streams=1)
    running = serve(create_app(deps), "127.0.0.1:0", threads=4)
    request = b"GET /api/v1/events?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        first = _raw(running, request)
        assert _response(first)[0] == 200
        extra = [_raw(running, request) for _ in range(200)]
        assert _healthz_seconds(running) < 1.0
        answered = 0
        for sock in extra:
            try:
                status, headers, body = _response(sock)
            except (AssertionError, ConnectionResetError):
                continue  # closed before its answer to make room for newer ones: fine
            assert status == 503 and headers.get("retry-after") and json.loads(body)["title"]
            answered += 1
            wait_for(lambda s=sock: _closed_by_server(s))  # type: ignore[misc]
        assert answered >= 32, answered  # at least the last per-client window was answered
        assert deps.streams.open == 1
        assert _healthz_seconds(running) < 1.0
        for sock in [first, *extra]:
            sock.close()
    finally:
        running.stop()


def _tmp_files() -> int:
    """Open files of this process in the temporary directory (waitress spools bodies there, unlinked)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/tmp/") or "(deleted)" in target:
            count += 1
    return count


@pytest.mark.parametrize(
    ("auth", "length", "status"),
    [("", "300000000", 413), ("", "1000", 401), ("Authorization: Bearer wrong\r\n", "1000", 403),
     (f"Authorization: Bearer {TOKEN}\r\n", "300000000", 413)],
)  # fmt: skip
def test_a_body_is_refused_before_it_is_read(server: HttpServer, auth: str, length: str, status: int) -> None:
    """Item 5: the answer comes with no body byte sent; nothing is spooled."""
    before = _tmp_files()
    sock = _raw(server, (f"POST /api/v1/sites HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                         f"Content-Length: {length}\r\n\r\n").encode())  # fmt: skip
    got, headers, body = _response(sock)
    assert got == status and headers["content-type"].startswith("application/json")
    assert json.loads(body)["title"]
    if status == 401:
        assert headers.get("www-authenticate", "").startswith("Bearer")
    assert _closed_by_server(sock)
    sock.close()
    assert _tmp_files() <= before


def test_a_chunked_body_without_a_token_is_refused_before_it_is_read(server: HttpServer) -> None:
    """Item 5: a chunked upload of 8 MiB: the 401 arrives after the headers, the body is never taken in."""
    before = _tmp_files()
    sock = _raw(server, b"POST /api/v1/sites HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, _, _ = _response(sock)
    assert status == 401
    sent = 0
    try:
        for _ in range(128):
            sock.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
            sent += 0x10000
    except OSError:
        pass  # the server closed the connection: it is not reading the body
    sock.close()
    assert _tmp_files() <= before


def test_waitress_errors_are_json(server: HttpServer) -> None:
    """Item 7: a bad request line and oversized headers answer JSON, not waitress's plain text."""
    for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 300_000 + b"\r\n\r\n"):
        sock = _raw(server)
        try:
            sock.sendall(data)
        except OSError:
            pass
        status, headers, body = _response(sock)
        sock.close()
        assert status in (400, 431) and headers["content-type"] == "application/json", (status, body)
        assert set(json.loads(body)) >= {"title", "description"}


def test_a_method_the_route_lacks_is_405_before_401(server: HttpServer) -> None:
    """Item 7: no token and a method the route does not have: 405 (with Allow), not 401; HEAD where GET is."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for method, path in (("PUT", "/healthz"), ("DELETE", "/api/v1/events"), ("POST", "/api/v1/sites/alpha")):
        conn.request(method, path, body=b"{}")
        resp = conn.getresponse()
        assert resp.status == 405 and resp.getheader("Allow") and json.loads(resp.read())["title"], (method, path)
    conn.request("HEAD", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()


def test_a_naive_client_sending_a_refused_body_still_reads_the_answer(deps: AppDeps) -> None:
    """Item 5: http.client writes the whole 2 MB body before reading; the early 413 must not become a reset."""
    running = serve(create_app(make_deps(max_body_bytes=1 << 20)), "127.0.0.1:0", threads=4)
    body = b'{"name": "huge", "pad": "' + b"x" * (2 << 20) + b'"}'
    statuses = []
    try:
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
            try:
                conn.request("POST", "/api/v1/sites", body=body, headers={"Authorization": f"Bearer {TOKEN}"})
                statuses.append(conn.getresponse().status)
            except OSError as err:
                statuses.append(type(err).__name__)  # type: ignore[arg-type]
            finally:
                conn.close()
    finally:
        running.stop()
    assert statuses == [413] * 20, statuses
