"""Logging from config: a rotating file plus the console, text or JSON.

Actor lines carry their tree path (`[sites/lutete-borehole/plc] ...` in text,
a `path` field in JSON) so `fieldwatch logs --site` can filter them.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from typing import Any

from fieldwatch.kinds import KINDS
from fieldwatch.logring import LogRing

__all__ = ["setup_logging", "JsonFormatter", "TEXT_FORMAT", "SecretFilter"]

TEXT_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s"
_DATEFMT = "%Y-%m-%dT%H:%M:%S"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, path (if any), message, exc."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime(_DATEFMT, time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        path = getattr(record, "path", None)
        if path:
            data["path"] = path
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class SecretFilter(logging.Filter):
    """Replaces known secret values (token, passwords) in log messages by <redacted>."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "<redacted>")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _utc_formatter(fmt: str) -> logging.Formatter:
    formatter = logging.Formatter(fmt, _DATEFMT)
    formatter.converter = time.gmtime
    return formatter


def setup_logging(
    *,
    level: str = "info",
    file: str | None = None,
    fmt: str = "text",
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    console: bool = True,
    secrets: list[str] | None = None,
) -> LogRing:
    """Configure the root logger (replacing handlers a previous call installed).

    Returns the in-memory ring of recent lines (always installed, file or not) that
    `/api/v1/logs` and the status page read.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_fieldwatch", False):
            root.removeHandler(handler)
            handler.close()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else _utc_formatter(TEXT_FORMAT)
    secret_filter = SecretFilter(secrets or [])
    handlers: list[logging.Handler] = []
    if file:
        os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups))
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    ring = LogRing()
    handlers.append(ring)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(secret_filter)
        handler._fieldwatch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Libraries are chatty at info: keep their warnings only. A kind's "quiet" library
    # (one whose failures its actor reports itself) is silent unless debugging.
    noisy = {name: "warning" for name in ("waitress", "peewee", "transitions", "pykka")}
    for kind in KINDS:
        noisy.update(kind.loggers)
    for name, how in noisy.items():
        if how == "quiet":
            logging.getLogger(name).setLevel(logging.WARNING if root.level <= logging.DEBUG else logging.CRITICAL + 1)
        else:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return ring
