"""Fixtures for the ICMP tests: a started prober, a result sink, a veth namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldwatch.actors.icmp.prober import Prober
from tests.actors.icmp.icmp_helpers import ResultSink
from tests.harness import Harness
from tests.netns import VethNamespace, netns_available, veth_namespace


def pytest_report_header() -> str:
    ok, reason = netns_available()
    return f"netns: {'available' if ok else 'UNAVAILABLE, namespace tests skip'} ({reason})"


@pytest.fixture
def prober() -> Iterator[Prober]:
    """A started privileged-or-not (detected) prober, stopped after the test."""
    p = Prober()
    p.start()
    yield p
    p.stop()


@pytest.fixture
def sink() -> ResultSink:
    """A fresh result collector."""
    return ResultSink()


@pytest.fixture
def veth_ns() -> Iterator[VethNamespace]:
    """A namespace whose peer address answers pings; skipped, with the reason, if impossible."""
    ok, reason = netns_available()
    if not ok:
        pytest.skip(f"network namespaces unavailable: {reason}")
    with veth_namespace() as ns:
        yield ns


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A real daemon (no HTTP), stopped after the test."""
    h = Harness(tmp_path)
    yield h
    h.stop()
