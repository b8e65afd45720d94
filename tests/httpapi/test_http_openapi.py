"""The OpenAPI document is true: same paths and methods as the app, same query parameters."""

from __future__ import annotations

import falcon.inspect
import falcon.testing

from fieldwatch.http import create_app, resources
from fieldwatch.http.openapi import openapi_document
from tests.httpapi.httpapi_fakes import make_deps

_METHODS = {"get", "post", "put", "delete", "patch"}


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(make_deps())
    return {
        (route.path, method.method.lower())
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }


def test_paths_and_methods_match_the_app() -> None:
    doc = openapi_document()
    documented = {(path, method) for path, item in doc["paths"].items() for method in item if method in _METHODS}
    assert documented == _app_routes()


def test_query_parameters_match_the_resources() -> None:
    doc = openapi_document()["paths"]
    for path, resource in (
        ("/api/v1/events", resources.EventCollection),
        ("/api/v1/alerts", resources.AlertCollection),
        ("/api/v1/readings", resources.ReadingCollection),
        ("/api/v1/topics", resources.TopicCollection),
        ("/api/v1/parse-errors", resources.ParseErrorCollection),
        ("/api/v1/logs", resources.LogResource),
    ):
        names = {p["name"] for p in doc[path]["get"]["parameters"] if p["in"] == "query"}
        assert names == set(resource.PARAMS), path


def test_every_operation_documents_its_responses_and_path_parameters() -> None:
    doc = openapi_document()
    refs = set(doc["components"]["schemas"])
    for path, item in doc["paths"].items():
        templated = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert templated == declared, path
        for method, op in item.items():
            if method not in _METHODS:
                continue
            assert op["summary"] and op["responses"], (path, method)
            if method != "get":
                assert {"401", "403"} <= set(op["responses"]), (path, method)
            text = str(op)
            for name in refs:
                text = text.replace(f"#/components/schemas/{name}'", "")
            assert "#/components/schemas/" not in text, f"dangling $ref in {method} {path}"


def test_served_document(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/openapi.json")
    assert resp.status_code == 200
    assert resp.json == openapi_document()
