"""`GET /api/v1/cluster`, the sites' `owner` and the cluster metrics of one instance on SQLite,
through the real daemon and waitress."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fieldwatch.config.model import SiteConfig
from tests.harness import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A real daemon on SQLite (HTTP when started with http=True), stopped after the test."""
    h = Harness(tmp_path)
    yield h
    h.stop()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
        return json.loads(body) if resp.headers.get_content_type() == "application/json" else body


def test_one_instance_on_sqlite_lists_itself_with_its_sites(harness: Harness) -> None:
    daemon = harness.start([SiteConfig(name="north"), SiteConfig(name="south", enabled=False)], http=True)
    cluster = _get(daemon.url + "/api/v1/cluster")
    assert [i["name"] for i in cluster["instances"]] == ["test"]
    me = cluster["instances"][0]
    assert me["live"] is True and me["sites"] == ["north", "south"]
    assert me["started_at"].endswith("Z") and me["last_seen"].endswith("Z")
    assert cluster["sites"] == [
        {"site": "north", "owner": "test", "epoch": None, "expires_at": None},
        {"site": "south", "owner": "test", "epoch": None, "expires_at": None},
    ]
    assert _get(daemon.url + "/api/v1/sites/north")["owner"] == "test"
    assert {s["name"]: s["owner"] for s in _get(daemon.url + "/api/v1/sites")["items"]} == {
        "north": "test", "south": "test"}


def test_cluster_metrics_of_one_instance(harness: Harness) -> None:
    daemon = harness.start([SiteConfig(name="north")], http=True)
    text = _get(daemon.url + "/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("fieldwatch_site_owned", (("site", "north"),))] == 1.0
    assert samples[("fieldwatch_lease_renew_failures_total", ())] == 0.0
    assert samples[("fieldwatch_storage_fenced_writes_total", ())] == 0.0


def test_a_deleted_site_is_no_longer_listed(harness: Harness) -> None:
    daemon = harness.start([SiteConfig(name="north"), SiteConfig(name="south")], http=True)
    request = urllib.request.Request(daemon.url + "/api/v1/sites/south", method="DELETE",
                                     headers={"Authorization": "Bearer test-token"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 204
    cluster = _get(daemon.url + "/api/v1/cluster")
    assert cluster["instances"][0]["sites"] == ["north"]
    assert [s["site"] for s in cluster["sites"]] == ["north"]
    text = _get(daemon.url + "/metrics")
    assert 'fieldwatch_site_owned{site="south"}' not in text
