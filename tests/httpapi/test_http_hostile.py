"""Careless input in-process and through the CLI (issue 14 items 2, 3, 6, 7, 9)."""

from __future__ import annotations

import json
import time

import falcon.testing
import pytest

from fieldwatch.cli import main
from fieldwatch.http import HttpServer, create_app
from tests.httpapi.httpapi_fakes import TOKEN, make_deps

TC = falcon.testing.TestClient


@pytest.mark.parametrize(
    "path",
    ["/api/v1/events?limit=", "/api/v1/events?level=", "/api/v1/alerts?active=", "/api/v1/logs?lines=",
     "/api/v1/readings?site=", "/api/v1/topics?cursor=", "/api/v1/parse-errors?since="],
)  # fmt: skip
def test_an_empty_parameter_is_400(client: TC, path: str) -> None:
    """Item 7: SPEC section 6, an empty parameter is a bad one (it used to be read as absent)."""
    resp = client.simulate_get(path)
    assert resp.status_code == 400 and "empty" in resp.json["description"], resp.text


def test_405_comes_before_401_and_head_is_served(client: TC) -> None:
    """Item 7: without a token, a method the route lacks is 405 (with Allow); HEAD answers where GET does."""
    for method, path in (("DELETE", "/api/v1/events"), ("PUT", "/api/v1/sites"), ("POST", "/healthz"),
                         ("PATCH", "/api/v1/sites/alpha")):  # fmt: skip
        resp = client.simulate_request(method, path, body=b"{}")
        assert resp.status_code == 405 and resp.headers.get("allow"), (method, path, resp.status_code)
    assert client.simulate_post("/api/v1/sites", body=b"{}").status_code == 401
    for path in ("/healthz", "/api/v1/sites", "/metrics", "/api/v1/events"):
        resp = client.simulate_head(path)
        assert resp.status_code == 200 and resp.content == b"", path


def test_head_of_a_followed_stream_gives_its_slot_back(client: TC, deps: object) -> None:
    """Item 7: HEAD runs GET's responder; a stream it opens is closed at once, not held."""
    resp = client.simulate_head("/api/v1/events", query_string="follow=1")
    assert resp.status_code == 200
    assert deps.streams.open == 0 and deps.streams.opened == deps.streams.closed == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["\ud800", "x\x00y"])
def test_unstorable_text_in_a_body_is_400(client: TC, auth: dict[str, str], bad: str) -> None:
    """Item 2: checked at the edge for every body (topics too), before the controller sees it."""
    for path, body in (("/api/v1/topics/enable", {"site": "alpha", "endpoint": "broker", "topic": bad}),
                       ("/api/v1/sites", {"name": "s", "endpoints": [{"name": "p", "kind": "icmp", "host": bad}]}),
                       ("/api/v1/sites", {"name": "s", bad: 1})):  # fmt: skip
        resp = client.simulate_post(path, body=json.dumps(body), headers=auth)  # ASCII JSON: \ud800 escapes
        assert resp.status_code == 400, (path, resp.text)
    resp = client.simulate_get("/api/v1/events", query_string="site=%00")
    assert resp.status_code == 400


def test_a_long_name_is_refused_before_any_slow_step(auth: dict[str, str]) -> None:
    """Item 3: 100,000 characters (within a 1 MiB body limit): a 400 in well under a second."""
    client = TC(create_app(make_deps(max_body_bytes=1048576)))
    began = time.perf_counter()
    resp = client.simulate_post("/api/v1/sites", json={"name": "a" * 100_000, "endpoints": []}, headers=auth)
    assert resp.status_code == 400 and "longer than" in resp.json["description"]
    assert time.perf_counter() - began < 0.5


def test_put_with_an_empty_body_changes_nothing(client: TC, auth: dict[str, str]) -> None:
    """Item 6: `{}` used to answer 200 and drop every endpoint of the site."""
    before = client.simulate_get("/api/v1/sites/alpha").json
    resp = client.simulate_put("/api/v1/sites/alpha", json={}, headers=auth)
    assert resp.status_code == 400 and "missing field 'endpoints'" in resp.json["description"]
    assert client.simulate_get("/api/v1/sites/alpha").json == before


@pytest.mark.parametrize("token", ["ab\ncd", "tök€n", "two words"])
def test_cli_refuses_a_token_it_cannot_send_without_printing_it(server: HttpServer, token: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Item 9: exit 2 with one line that names the problem, not the token; no traceback."""
    assert main(["disable", "alpha", "--url", server.url, "--token", token]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "token" in err and "Traceback" not in err
    assert token not in err and "ab\n" not in err and "tök" not in err


@pytest.mark.parametrize("args", [["events", "--limit", "0"], ["events", "--limit", "20000"],
                                  ["logs", "--lines", "10001"], ["events", "--limit", "x"]])  # fmt: skip
def test_cli_checks_limits_to_the_spec_range(server: HttpServer, args: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Item 9: refused by the CLI (usage error, 2) instead of by the server."""
    assert main([*args, "--url", server.url, "--token", TOKEN]) == 2
    assert "10,000" in capsys.readouterr().err or args[-1] == "x"


def test_a_site_body_declares_at_most_1000_endpoints(auth: dict[str, str]) -> None:
    """Item 3: the count is bounded before the config schema validates each one (20,000 took about 10 s)."""
    client = TC(create_app(make_deps(max_body_bytes=1048576)))
    endpoints = [{"name": f"e{i}", "kind": "icmp", "host": "h"} for i in range(20_000)]
    began = time.perf_counter()
    resp = client.simulate_post("/api/v1/sites", json={"name": "big", "endpoints": endpoints}, headers=auth)
    assert resp.status_code == 400 and "more than 1000 endpoints" in resp.json["description"]
    assert time.perf_counter() - began < 1.0
