"""The peer matrix: tests against servers and brokers we did not write record their outcome.

A test marked ``@pytest.mark.peer(protocol="mqtt", peer="nats-server", case="200 equal QoS 1
payloads")`` appends one JSON line (protocol, peer, version, case, result, detail) to
``$FIELDWATCH_PEERS_OUT`` (default ``.peers-results.jsonl`` at the repository root) when it
finishes; ``scripts/peers_matrix.py`` turns that file into the table in ``docs/peers.md``.
A test tells the peer's version it actually ran against with the ``peer_version`` fixture:
``peer_version("2.10.24")``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_VERSION = pytest.StashKey[str]()
_DETAIL = pytest.StashKey[str]()


def _out_path() -> Path:
    return Path(os.environ.get("FIELDWATCH_PEERS_OUT") or ROOT / ".peers-results.jsonl")


@pytest.fixture
def peer_version(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """Call with the version of the peer this test runs against (and optionally a detail)."""

    def _set(version: str, detail: str = "") -> None:
        request.node.stash[_VERSION] = version
        if detail:
            request.node.stash[_DETAIL] = detail

    yield _set


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    marker = item.get_closest_marker("peer")
    if marker is None:
        return
    final = rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed")
    if not final:
        return
    detail = item.stash.get(_DETAIL, "")
    if rep.outcome == "skipped" and isinstance(rep.longrepr, tuple):
        detail = str(rep.longrepr[2])
    elif rep.outcome == "failed":
        detail = (rep.longreprtext or "").strip().splitlines()[-1][:200] if rep.longreprtext else ""
    record = {
        "protocol": marker.kwargs.get("protocol", ""),
        "peer": marker.kwargs.get("peer", ""),
        "case": marker.kwargs.get("case", item.name),
        "version": item.stash.get(_VERSION, ""),
        "result": rep.outcome,
        "detail": detail,
        "test": item.nodeid,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with _out_path().open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
