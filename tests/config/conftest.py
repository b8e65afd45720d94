"""Fixtures for config tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.config_files import ConfigFiles


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigFiles:
    """A ConfigFiles in a fresh temporary directory that is also the working directory."""
    monkeypatch.chdir(tmp_path)
    return ConfigFiles(tmp_path)
