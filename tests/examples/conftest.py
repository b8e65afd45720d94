"""Fixtures for the examples/ tests: the metric names fieldwatch exports, promtool."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # examples_helpers

from examples_helpers import exported_names  # noqa: E402


@pytest.fixture(scope="session")
def exported() -> tuple[frozenset[str], frozenset[str]]:
    """(sample names, family names) fieldwatch's /metrics exports (see examples_helpers.exported_names)."""
    return exported_names()


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary (Debian package `prometheus`); the test is skipped with the reason if absent."""
    path = shutil.which("promtool")
    if path is None:
        print("promtool not installed (Debian package 'prometheus'): skipping the promtool checks")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path
