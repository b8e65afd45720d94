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
