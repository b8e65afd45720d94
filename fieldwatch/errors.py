"""Errors raised by fieldwatch; every one derives from FieldwatchError."""

from __future__ import annotations


class FieldwatchError(Exception):
    """Root of every error fieldwatch raises on purpose."""


class ConfigError(FieldwatchError):
    """A configuration file is invalid; `errors` holds every message found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


class StorageError(FieldwatchError):
    """A database operation failed."""


class SupervisionError(FieldwatchError):
    """A supervisor could not start, restart or stop a child."""


class NotFoundError(FieldwatchError):
    """A site, endpoint or topic named in a command does not exist."""


class ConflictError(FieldwatchError):
    """A command conflicts with existing state (e.g. a site that already exists)."""
