"""ConfigFiles: write YAML files into a temporary directory and load them (config tests)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from fieldwatch.config import Config, load_config
from fieldwatch.errors import ConfigError


class ConfigFiles:
    """Writes config files into a temporary working directory and loads them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, text: str, name: str = "fieldwatch.yaml") -> Path:
        """Write dedented `text` (first line = line 1) as `name`; returns its path."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def load(self, text: str, env: Mapping[str, str] | None = None, name: str = "fieldwatch.yaml") -> Config:
        """Write and load a config (relative name, so errors start with `fieldwatch.yaml:`)."""
        self.write(text, name)
        return load_config(name, env=env or {})

    def errors(self, text: str, env: Mapping[str, str] | None = None, name: str = "fieldwatch.yaml") -> list[str]:
        """Write and load a config that must fail; returns every error message."""
        with pytest.raises(ConfigError) as info:
            self.load(text, env, name)
        return info.value.errors
