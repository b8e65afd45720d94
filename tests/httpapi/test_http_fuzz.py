"""Generated requests (hypothesis): whatever is sent, the API answers below 500, in JSON."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import falcon.testing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldwatch.http import create_app
from fieldwatch.http.openapi import openapi_document
from tests.httpapi.httpapi_fakes import TOKEN, make_deps

_DOC = openapi_document()
_TEMPLATES = sorted(_DOC["paths"])
_PARAM_NAMES = sorted({p["name"] for item in _DOC["paths"].values() for op in item.values()
                       if isinstance(op, dict) for p in op.get("parameters", []) if p["in"] == "query"})  # fmt: skip

_names = st.integers(0, 9).flatmap(
    lambda n: (
        st.sampled_from(["alpha", "beta", "plc", "router", "broker", "sensors/a/t"])
        if n < 7
        else st.sampled_from(["nope", "", "..", "%2F", "a b"]) | st.text(min_size=1, max_size=20)
    )
)
_values = (
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "10000",
            "10001",
            "true",
            "no",
            "nan",
            "inf",
            "1e999",
            "2024-01-01T00:00:00Z",
            "2024-13-45T99:99:99+00:00",
            "1700000000.5",
            "error",
            "WARN",
            "x" * 2000,
        ]
    )  # fmt: skip
    | st.text(max_size=30)
    | st.integers().map(str)
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_site_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": _names | st.integers(),
        "enabled": st.booleans() | st.text(max_size=3),
        "endpoints": st.lists(
            st.fixed_dictionaries(
                {},
                optional={"name": _names, "kind": st.sampled_from(["icmp", "mqtt", "x"]), "host": st.text(max_size=10)},
            )  # fmt: skip
            | _json_values,
            max_size=3,
        ),
        "site": _names,
        "endpoint": _names,
        "topic": st.text(max_size=20),
        "extra": _json_values,
    },
)
_bodies = st.none() | st.binary(max_size=64) | _json_values.map(json.dumps) | _site_bodies.map(json.dumps)


def _often(draw: st.DrawFn, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str], str | bytes | None]:
    if _often(draw, 85):
        template = draw(st.sampled_from(_TEMPLATES))
    else:
        template = "/" + urllib.parse.quote(draw(st.text(max_size=30)), safe="/{}")
    path = template
    while "{" in path and "}" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + urllib.parse.quote(draw(_names), safe="") + path[end + 1 :]
    documented = [m.upper() for m in _DOC["paths"].get(template, {}) if m != "parameters"]
    if documented and _often(draw, 80):
        method = draw(st.sampled_from(documented))
    else:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    op = _DOC["paths"].get(template, {}).get(method.lower(), {})
    known = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"] or _PARAM_NAMES
    names = st.sampled_from(known) if _often(draw, 75) else st.sampled_from(_PARAM_NAMES) | st.text(max_size=8)
    query = draw(st.dictionaries(names, _values, max_size=4))
    if any(k == "follow" for k in query):
        query["max_s"] = "0"  # a followed stream ends at once in-process
    if _often(draw, 70):
        headers = {"Authorization": f"Bearer {TOKEN}"}
    else:
        headers = draw(st.sampled_from([{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]))
    return method, path, urllib.parse.urlencode(query), headers, draw(_bodies)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> falcon.testing.TestClient:
    log = tmp_path_factory.mktemp("fuzz") / "fieldwatch.log"
    log.write_text("2024-05-01T10:00:00.000Z INFO    x: [sites/alpha/plc] hello\n")
    deps = make_deps(log_file=str(log))
    q: Any = deps.queries
    for i in range(30):
        q.add_event("alpha", "plc", "info", f"e{i}")
    return falcon.testing.TestClient(create_app(deps))


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])  # fmt: skip
@given(request=_requests())
def test_no_5xx(fuzz_client: falcon.testing.TestClient, request: tuple[str, str, str, dict[str, str], Any]) -> None:
    method, path, query, headers, body = request
    resp = fuzz_client.simulate_request(method, path, query_string=query, headers=headers, body=body)
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if method != "HEAD" and resp.status_code != 204 and path != "/metrics":
        if resp.content and resp.headers.get("content-type", "").startswith("application/json"):
            json.loads(resp.text)
