"""Fixtures of the chaos soak: the seed, the backend, and skips for what this machine lacks."""

from __future__ import annotations

import os
import shutil

import psycopg2
import pytest

from .env import PG_DSN

#: The seed used when FIELDWATCH_SOAK_SEED is not set (printed by every run).
DEFAULT_SEED = 20261123


@pytest.fixture
def soak_seed() -> int:
    """FIELDWATCH_SOAK_SEED, else the fixed default; printed so a run can be repeated."""
    seed = int(os.environ.get("FIELDWATCH_SOAK_SEED", DEFAULT_SEED))
    print(f"\nsoak: seed {seed} (FIELDWATCH_SOAK_SEED={seed} repeats this schedule)")
    return seed


def postgres_available() -> bool:
    """Whether the PostgreSQL server the soak may use answers."""
    try:
        psycopg2.connect(PG_DSN, connect_timeout=3).close()
    except psycopg2.Error:
        return False
    return True


@pytest.fixture
def soak_backend() -> str:
    """FIELDWATCH_SOAK_BACKEND: sqlite (default) or postgresql (a fresh database on 127.0.0.1:5432)."""
    wanted = os.environ.get("FIELDWATCH_SOAK_BACKEND", "sqlite")
    if wanted not in ("sqlite", "postgresql"):
        pytest.fail(f"FIELDWATCH_SOAK_BACKEND={wanted!r}: expected sqlite or postgresql")
    if wanted == "postgresql" and not postgres_available():
        pytest.skip(f"FIELDWATCH_SOAK_BACKEND=postgresql but nothing answers at {PG_DSN}")
    return wanted


@pytest.fixture(autouse=True)
def _needs_peers() -> None:
    """The soak drives real processes: OPC UA sims always, Mosquitto for MQTT, `ip` for namespaces."""
    if shutil.which("ip") is None and os.geteuid() == 0:
        print("soak: iproute2 missing: namespace targets will be skipped")
