"""Shared fixtures: every test leaves no actor running."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pykka
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/ helpers (harness, netns, mosquitto)


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    try:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
    except pykka.Timeout:
        pass  # a deliberately hung test actor: it is abandoned, as the supervisor does


#: Folders whose tests start real processes of other programs (peers, browsers, Prometheus,
#: the daemon itself, the soak): all `slow`, so `-m "not slow"` is the quick subset.
_SLOW_FOLDERS = ("peers", "e2e", "soak", "examples", "cluster")
#: Modules of real-server fault scenarios and fuzzers (seconds each): `slow` too.
_SLOW_MODULES = frozenset({
    "actors/test_persistence_faults.py",
    "actors/opcua/test_opcua_session.py",
    "actors/opcua/test_opcua_actor.py",
    "actors/mqtt/test_mqtt_noloss.py",
    "actors/mqtt/test_mqtt_detection.py",
    "actors/mqtt/test_mqtt_duplicates.py",
    "httpapi/test_http_fuzz.py",
    "httpapi/test_http_schemathesis.py",
    "httpapi/test_http_abuse.py",
    "httpapi/test_http_readings_history.py",
    "storage/test_retention.py",
    "storage/test_raw_size.py",
    "storage/test_migrate_v2.py",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under a slow folder `slow` (README: the quick subset is `-m "not slow"`)."""
    root = os.path.dirname(__file__)
    for item in items:
        rel = os.path.relpath(str(item.path), root)
        if rel.split(os.sep, 1)[0] in _SLOW_FOLDERS or rel.replace(os.sep, "/") in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
