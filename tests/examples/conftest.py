"""Fixtures for the examples/ tests: the metric names fieldwatch exports, promtool."""

from __future__ import annotations

import shutil

import pytest

from tests.examples.examples_helpers import exported_names


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
