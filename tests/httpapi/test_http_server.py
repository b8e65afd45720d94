"""Through a real waitress: serve() on a free port, chunked follow streams, disconnects, stop()."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fieldwatch.http import AppDeps, HttpServer, create_app, serve
from tests.httpapi.httpapi_fakes import TOKEN
from tests.waiting import wait_for


@contextmanager
def _stream(server: HttpServer, path: str) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    try:
        yield resp
    finally:
        resp.close()  # the response holds the socket too
        conn.close()


def _next_item(resp: http.client.HTTPResponse) -> dict[str, Any]:
    while True:
        line = resp.readline()
        assert line, "stream ended"
        if line.strip():  # blank lines are heartbeats
            return json.loads(line)  # type: ignore[no-any-return]


def test_serve_on_a_free_port(server: HttpServer) -> None:
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
        assert json.load(resp) == {"status": "ok"}
    with urllib.request.urlopen(f"{server.url}/openapi.json", timeout=5) as resp:
        assert json.load(resp)["openapi"].startswith("3.0")


def test_follow_logs_across_rotation_and_disconnect(server: HttpServer, deps: AppDeps, log_file: str) -> None:
    def write(*lines: str) -> None:
        with open(log_file, "a") as f:
            f.write("".join(f"2024-05-01T10:00:00.000Z INFO    x: [sites/alpha/plc] {line}\n" for line in lines))

    write("one", "two")
    with _stream(server, "/api/v1/logs?lines=1&follow=1&site=alpha") as resp:
        assert resp.status == 200
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert _next_item(resp)["line"].endswith("two")
        write("three")
        assert _next_item(resp)["line"].endswith("three")
        os.rename(log_file, log_file + ".1")  # what RotatingFileHandler does
        write("four")  # a new file
        assert _next_item(resp)["line"].endswith("four")
        assert deps.streams.open == 1
    wait_for(lambda: deps.streams.open == 0)  # the heartbeat write failed: the generator was closed
    assert deps.streams.closed == 1


def test_follow_events(server: HttpServer, deps: AppDeps) -> None:
    q: Any = deps.queries
    q.add_event("alpha", "plc", "info", "before")
    with _stream(server, "/api/v1/events?follow=1&limit=5&site=alpha") as resp:
        assert resp.getheader("Content-Type") == "application/x-ndjson"
        assert _next_item(resp)["message"] == "before"
        q.add_event("beta", "broker", "error", "other site")
        q.add_event("alpha", "plc", "error", "after")
        assert _next_item(resp)["message"] == "after"
    wait_for(lambda: deps.streams.open == 0)


def test_chunked_body_over_the_limit_is_413(server: HttpServer, deps: AppDeps) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    chunks = iter([b'{"name": "' + b"a" * (deps.max_body_bytes) + b'"}'])
    conn.request("POST", "/api/v1/sites", body=chunks, encode_chunked=True,
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_stop_ends_open_streams(deps: AppDeps, log_file: str) -> None:
    server = serve(create_app(deps), "127.0.0.1:0", threads=2)
    open(log_file, "w").close()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/api/v1/logs?follow=1")
    resp = conn.getresponse()
    assert resp.status == 200
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    wait_for(lambda: deps.streams.open == 0)
    conn.close()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0  # nothing listens any more


def test_bad_listen_is_an_error(deps: AppDeps) -> None:
    for listen in ("8080", "localhost:http", ""):
        try:
            serve(create_app(deps), listen)
        except ValueError:
            continue
        raise AssertionError(f"{listen!r} was accepted")
