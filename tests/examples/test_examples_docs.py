"""docs/operating.md and examples/README.md name only metrics fieldwatch exports and routes the app serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from fieldwatch.actors.tree import TreeView
from fieldwatch.http.app import AppDeps, create_app
from fieldwatch.storage.gateway import StorageGateway
from tests.examples.examples_helpers import EXAMPLES, REPO, metric_names
from tests.ledger_helpers import new_ledger

DOCS = (REPO / "docs" / "operating.md", REPO / "docs" / "cluster.md", EXAMPLES / "README.md")
_ROUTE = re.compile(r"/(?:api/v1|healthz|readyz|metrics|openapi\.json)[A-Za-z0-9_{}./-]*")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_exported_metrics(doc: Path, exported: tuple[frozenset[str], frozenset[str]]) -> None:
    samples, families = exported
    unknown = metric_names(doc.read_text(encoding="utf-8")) - samples - families
    assert not unknown, f"{doc.name} names metrics fieldwatch does not export: {sorted(unknown)}"


def _router() -> Any:
    deps = AppDeps(controller=object(), board=new_ledger(), tree=TreeView(),  # type: ignore[arg-type]
                   storage=StorageGateway(), registry=prometheus_client.CollectorRegistry(), token=None,
                   log_file=None)  # fmt: skip
    return create_app(deps)._router


def test_docs_name_only_served_routes() -> None:
    router = _router()
    text = (REPO / "docs" / "operating.md").read_text(encoding="utf-8")
    routes = {m.rstrip("/.") for m in _ROUTE.findall(text)}
    assert "/api/v1/sites" in routes and "/metrics" in routes
    for route in sorted(routes):
        path = route.replace("{site}", "a-site").replace("{endpoint}", "an-endpoint")
        assert router.find(path) is not None, f"operating.md names {route}, which the app does not serve"
