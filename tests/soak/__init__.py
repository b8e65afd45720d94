"""The chaos soak: the daemon as a process under random, seeded faults (see test_soak.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
# The shared helpers this package reuses: tests/ (mosquitto, netns), tests/e2e (daemon_proc),
# tests/actors/opcua (opcua_sim). pytest adds the same directories when it collects those suites.
for _dir in (_TESTS, _TESTS / "e2e", _TESTS / "actors" / "opcua"):
    if str(_dir) not in sys.path:
        sys.path.append(str(_dir))
