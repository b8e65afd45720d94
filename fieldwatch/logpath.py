"""`PathLogger`: log lines prefixed with an actor's path in the tree (`[sites/plant/plc] ...`)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["PathLogger", "path_logger"]


class PathLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the actor's path in the tree and sets `extra['path']`."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        path = self.extra["path"] if self.extra else "?"
        kwargs.setdefault("extra", {})["path"] = path
        return f"[{path}] {msg}", kwargs


def path_logger(logger: logging.Logger, path: str) -> PathLogger:
    """`logger` with lines prefixed by `path` (a tree path without its `root/`)."""
    return PathLogger(logger, {"path": path.removeprefix("root/")})
