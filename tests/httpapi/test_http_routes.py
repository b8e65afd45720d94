"""Every route of SPEC section 6 in-process: success shapes and every error status."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon.testing
import pytest

from fieldwatch.actors.tree import TreeNode
from fieldwatch.http import AppDeps, create_app
from tests.httpapi.httpapi_fakes import TOKEN, make_deps

TC = falcon.testing.TestClient


def test_healthz_and_readyz(client: TC, deps: AppDeps) -> None:
    assert client.simulate_get("/healthz").json == {"status": "ok"}
    assert client.simulate_get("/readyz").status_code == 200
    deps.controller.readiness = (False, "storage writer stopped")  # type: ignore[attr-defined]
    resp = client.simulate_get("/readyz")
    assert resp.status_code == 503
    assert resp.json["description"] == "storage writer stopped"
    deps.controller.is_alive = False  # type: ignore[attr-defined]
    assert client.simulate_get("/healthz").status_code == 503


def test_list_and_get_sites(client: TC) -> None:
    body = client.simulate_get("/api/v1/sites").json
    assert body["next"] is None
    assert [s["name"] for s in body["items"]] == ["alpha", "beta"]
    site = client.simulate_get("/api/v1/sites/alpha").json
    assert {"name", "enabled", "endpoints"} <= set(site)
    ep = site["endpoints"][0]
    for key in ("site", "name", "kind", "enabled", "state", "since", "reason", "down_since", "last_data_at",
                "generation", "restarts", "reconnects", "config"):  # fmt: skip
        assert key in ep


def test_unknown_site_and_endpoint_are_404(client: TC, auth: dict[str, str]) -> None:
    for path in ("/api/v1/sites/nope", "/api/v1/endpoints/alpha/nope", "/api/v1/endpoints/nope/plc"):
        resp = client.simulate_get(path)
        assert resp.status_code == 404, path
        assert set(resp.json) >= {"title", "description"}
    for path in ("/api/v1/sites/nope/enable", "/api/v1/endpoints/alpha/nope/restart"):
        assert client.simulate_post(path, headers=auth).status_code == 404
    assert client.simulate_get("/api/v1/no-such-route").json["title"]
    assert client.simulate_post("/api/v1/sites/alpha/explode", headers=auth).status_code == 404


def test_get_endpoint(client: TC) -> None:
    ep = client.simulate_get("/api/v1/endpoints/alpha/plc").json
    assert ep["kind"] == "opcua" and ep["readings"] == []


@pytest.mark.parametrize("action,enabled,state", [("disable", False, "disabled"), ("enable", True, "connecting")])
def test_site_enable_disable_is_202_with_the_site(
    client: TC, auth: dict[str, str], action: str, enabled: bool, state: str
) -> None:
    resp = client.simulate_post(f"/api/v1/sites/alpha/{action}", headers=auth)
    assert resp.status_code == 202
    assert resp.json["name"] == "alpha" and resp.json["enabled"] is enabled
    assert {ep["state"] for ep in resp.json["endpoints"]} == {state}


def test_endpoint_commands(client: TC, deps: AppDeps, auth: dict[str, str]) -> None:
    for action in ("disable", "enable", "restart"):
        resp = client.simulate_post(f"/api/v1/endpoints/alpha/plc/{action}", headers=auth)
        assert resp.status_code == 202
        assert resp.json["name"] == "alpha"
    assert deps.controller.calls == [  # type: ignore[attr-defined]
        ("endpoint_enabled", "alpha", "plc", False), ("endpoint_enabled", "alpha", "plc", True),
        ("restart", "alpha", "plc"),
    ]  # fmt: skip


def test_create_replace_delete(client: TC, auth: dict[str, str]) -> None:
    body = {"name": "gamma", "enabled": True, "endpoints": [{"name": "r", "kind": "icmp", "host": "10.0.0.1"}]}
    resp = client.simulate_post("/api/v1/sites", json=body, headers=auth)
    assert resp.status_code == 201
    assert resp.headers["location"].endswith("/api/v1/sites/gamma")
    assert resp.json["endpoints"][0]["name"] == "r"
    assert client.simulate_post("/api/v1/sites", json=body, headers=auth).status_code == 409
    resp = client.simulate_put("/api/v1/sites/gamma", json={"name": "gamma", "endpoints": []}, headers=auth)
    assert resp.status_code == 200 and resp.json["endpoints"] == []
    resp = client.simulate_put("/api/v1/sites/gamma", json={"name": "other"}, headers=auth)
    assert resp.status_code == 400
    assert client.simulate_delete("/api/v1/sites/gamma", headers=auth).status_code == 204
    assert client.simulate_get("/api/v1/sites/gamma").status_code == 404
    assert client.simulate_delete("/api/v1/sites/gamma", headers=auth).status_code == 404


def test_config_error_is_400_with_every_message(client: TC, auth: dict[str, str]) -> None:
    body = {"name": "gamma", "endpoints": [{"name": "a", "kind": "ftp"}, {"kind": "telnet"}]}
    resp = client.simulate_post("/api/v1/sites", json=body, headers=auth)
    assert resp.status_code == 400
    assert len(resp.json["errors"]) == 3
    assert "endpoints[0].kind" in resp.json["description"] and "endpoints[1].name" in resp.json["description"]


@pytest.mark.parametrize(
    "raw,fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'"name"', "JSON object"),
        (b'{"name": NaN}', "not valid JSON"),
        (b"\xff\xfe\xfa", "not valid JSON"),
        (b"[" * 4000, "not valid JSON"),
        (b'{"name": "x", "colour": "red"}', "unknown field 'colour'"),
        (b'{"name": 5}', "field 'name' must be a string"),
        (b'{"name": "x", "enabled": "yes"}', "field 'enabled' must be true or false"),
        (b'{"name": "x", "endpoints": {}}', "field 'endpoints' must be a list"),
        (b'{"name": "x", "endpoints": [1]}', "endpoints[0] must be an object"),
        (b'{"enabled": true}', "missing field 'name'"),
    ],
)
def test_bad_bodies_are_400(client: TC, auth: dict[str, str], raw: bytes, fragment: str) -> None:
    resp = client.simulate_post("/api/v1/sites", body=raw, headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json["description"]


def test_body_over_the_limit_is_413(client: TC, auth: dict[str, str], deps: AppDeps) -> None:
    big = json.dumps({"name": "x", "endpoints": [{"name": "a" * deps.max_body_bytes, "kind": "icmp"}]})
    resp = client.simulate_post("/api/v1/sites", body=big, headers=auth)
    assert resp.status_code == 413
    assert resp.json["title"] == "Body too large"


def test_auth(deps: AppDeps, caplog: pytest.LogCaptureFixture) -> None:
    client = TC(create_app(deps))
    assert client.simulate_post("/api/v1/sites/alpha/disable").status_code == 401
    assert client.simulate_post("/api/v1/sites/alpha/disable").headers["www-authenticate"].startswith("Bearer")
    bad = client.simulate_post("/api/v1/sites/alpha/disable", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403 and TOKEN not in bad.text
    assert client.simulate_post("/api/v1/sites/alpha/disable",
                                headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401  # fmt: skip
    assert client.simulate_delete("/api/v1/sites/alpha", headers={"Authorization": "Bearer"}).status_code == 401
    assert deps.controller.calls == []  # type: ignore[attr-defined]
    assert client.simulate_get("/api/v1/sites").status_code == 200  # reads need no token

    unconfigured = TC(create_app(make_deps(token=None)))
    with caplog.at_level(logging.WARNING, logger="fieldwatch.http.auth"):
        for _ in range(3):
            resp = unconfigured.simulate_post("/api/v1/sites/alpha/disable",
                                              headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert resp.status_code == 403
            assert "no http.token" in resp.json["description"]
    warnings = [r for r in caplog.records if "no http.token configured" in r.getMessage()]
    assert len(warnings) == 1


def test_storage_error_is_503_and_bug_is_generic_500(
    client: TC, deps: AppDeps, caplog: pytest.LogCaptureFixture
) -> None:
    deps.controller.storage_down = True  # type: ignore[attr-defined]
    resp = client.simulate_get("/api/v1/sites")
    assert resp.status_code == 503 and "storage writer" in resp.json["description"]
    deps.controller.storage_down = False  # type: ignore[attr-defined]
    deps.controller.explode = True  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="fieldwatch.http.errors"):
        resp = client.simulate_get("/api/v1/sites")
    assert resp.status_code == 500
    assert "internal detail" not in resp.text
    assert set(resp.json) == {"title", "description"}
    assert any(r.exc_info and "internal detail" in str(r.exc_info[1]) for r in caplog.records)


def test_method_not_allowed_is_json(client: TC, auth: dict[str, str]) -> None:
    resp = client.simulate_put("/api/v1/events", headers=auth)
    assert resp.status_code == 405
    assert resp.headers["content-type"].startswith("application/json")
    resp = client.simulate_get("/api/v1/sites/alpha/enable")
    assert resp.status_code == 405


def test_errors_are_json_even_when_xml_is_preferred(client: TC) -> None:
    resp = client.simulate_get("/api/v1/sites/nope", headers={"Accept": "application/xml"})
    assert resp.status_code == 404 and resp.json["title"] == "Not found"


def _seed(deps: AppDeps) -> None:
    q: Any = deps.queries
    for i in range(5):
        q.add_event("alpha", "plc", "error" if i % 2 else "info", f"e{i}")
    q.rows["alerts"] = [{"site": "alpha", "endpoint": "plc", "condition": "down", "active": a} for a in (False, True)]
    q.rows["readings"] = [{"site": "beta", "endpoint": "broker", "name": n, "value": 1.5} for n in ("t", "h")]
    q.rows["topics"] = [{"site": "beta", "endpoint": "broker", "topic": "sensors/a/t"}]


def test_collections(client: TC, deps: AppDeps) -> None:
    _seed(deps)
    events = client.simulate_get("/api/v1/events", params={"limit": "2"}).json
    assert [e["message"] for e in events["items"]] == ["e4", "e3"]  # newest first
    nxt = client.simulate_get("/api/v1/events", params={"limit": "2", "cursor": events["next"]}).json
    assert [e["message"] for e in nxt["items"]] == ["e2", "e1"]
    errors = client.simulate_get("/api/v1/events", params={"level": "ERROR", "site": "alpha"}).json
    assert {e["level"] for e in errors["items"]} == {"error"}
    alerts = client.simulate_get("/api/v1/alerts", params={"active": "true"}).json
    assert [a["active"] for a in alerts["items"]] == [True]
    readings = client.simulate_get("/api/v1/readings", params={"name": "t"}).json
    assert [r["name"] for r in readings["items"]] == ["t"]
    client.simulate_get("/api/v1/readings", params={"since": "1700000000", "until": "1700086400", "step": "3600"})
    call = [c[1] for c in deps.queries.calls if c[0] == "readings"][-1]  # type: ignore[attr-defined]
    assert (call["since"], call["until"], call["step"]) == (1700000000.0, 1700086400.0, 3600)
    assert client.simulate_get("/api/v1/topics", params={"site": "beta"}).json["items"][0]["topic"] == "sensors/a/t"
    client.simulate_get("/api/v1/events", params={"since": "2024-01-01T00:00:00Z"})
    client.simulate_get("/api/v1/events", params={"since": "1700000000"})
    sinces = [c[1]["since"] for c in deps.queries.calls if c[0] == "events"][-2:]  # type: ignore[attr-defined]
    assert sinces == [1704067200.0, 1700000000.0]
    assert client.simulate_get("/api/v1/events").json["next"] is None


@pytest.mark.parametrize(
    "path,query",
    [
        ("/api/v1/events", "limit=0"),
        ("/api/v1/events", "limit=10001"),
        ("/api/v1/events", "limit=ten"),
        ("/api/v1/events", "limit=1&limit=2"),
        ("/api/v1/events", "since=yesterday"),
        ("/api/v1/events", "since=2024-01-01T00:00:00"),
        ("/api/v1/events", "since=nan"),
        ("/api/v1/events", "since=1e999"),
        ("/api/v1/events", "level=loud"),
        ("/api/v1/events", "cursor=not-a-cursor"),
        ("/api/v1/events", "follow=maybe"),
        ("/api/v1/events", "follow=1&max_s=-1"),
        ("/api/v1/events", "colour=red"),
        ("/api/v1/alerts", "active=perhaps"),
        ("/api/v1/readings", "since=--"),
        ("/api/v1/readings", "step=90"),
        ("/api/v1/readings", "step=0"),
        ("/api/v1/readings", "step=-60"),
        ("/api/v1/readings", "step=1m"),
        ("/api/v1/readings", "until=yesterday"),
        ("/api/v1/topics", "limit=-5"),
        ("/api/v1/logs", "lines=-1"),
        ("/api/v1/logs", "lines=many"),
        ("/api/v1/logs", "level=verbose"),
        ("/api/v1/sites", "x=1"),
        ("/api/v1/tree", "depth=2"),
    ],
)
def test_bad_query_parameters_are_400(client: TC, path: str, query: str) -> None:
    resp = client.simulate_get(path, query_string=query)
    assert resp.status_code == 400, resp.text
    assert resp.json["description"]


def test_limit_bounds_accepted(client: TC) -> None:
    for value in ("1", "10000"):
        assert client.simulate_get("/api/v1/events", params={"limit": value}).status_code == 200


def test_storage_down_on_collections_is_503(client: TC, deps: AppDeps) -> None:
    deps.queries.fail = True  # type: ignore[attr-defined]
    assert client.simulate_get("/api/v1/readings").status_code == 503


def test_topic_commands(client: TC, auth: dict[str, str]) -> None:
    body = {"site": "beta", "endpoint": "broker", "topic": "sensors/a/t"}
    resp = client.simulate_post("/api/v1/topics/disable", json=body, headers=auth)
    assert resp.status_code == 200 and resp.json["is_active"] is False
    assert client.simulate_post("/api/v1/topics/enable", json=body, headers=auth).json["is_active"] is True
    missing = client.simulate_post("/api/v1/topics/enable", json={**body, "topic": "x"}, headers=auth)
    assert missing.status_code == 404
    bad = client.simulate_post("/api/v1/topics/enable", json={"site": "beta", "topic": 3, "qos": 1}, headers=auth)
    assert bad.status_code == 400
    assert set(bad.json["errors"]) == {"unknown field 'qos'", "missing field 'endpoint'",
                                       "field 'topic' must be a string"}  # fmt: skip
    assert client.simulate_post("/api/v1/topics/enable", json=body).status_code == 401


def test_tree(client: TC, deps: AppDeps) -> None:
    deps.tree.put(TreeNode("root", "supervisor", "running", 1, 0, 1.0))
    deps.tree.put(TreeNode("root/sites/alpha/plc", "opcua", "restarting", 3, 2, None, "TimeoutError", "no answer"))
    items = client.simulate_get("/api/v1/tree").json["items"]
    assert [n["path"] for n in items] == ["root", "root/sites/alpha/plc"]
    assert items[1]["last_failure"] == {"type": "TimeoutError", "message": "no answer"}
    assert items[1]["restarts"] == 2 and items[1]["uptime_s"] is None


def test_trailing_slash_is_the_same_route(client: TC) -> None:
    assert client.simulate_get("/api/v1/sites/").status_code == 200
