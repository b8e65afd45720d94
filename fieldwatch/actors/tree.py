"""A lock-protected view of the live supervision tree, read by the API and metrics."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["TreeNode", "TreeView"]


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One actor in the tree as the operator sees it."""

    path: str
    kind: str
    state: str  # running | restarting | stopped | failed
    generation: int
    restarts: int
    started_at: float | None  # Unix seconds of the current instance's start
    last_failure_type: str | None = None
    last_failure_message: str | None = None
    abandoned: int = 0  # hung instances given up on

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON shape for /api/v1/tree."""
        now = time.time() if now is None else now
        return {
            "path": self.path,
            "kind": self.kind,
            "state": self.state,
            "generation": self.generation,
            "restarts": self.restarts,
            "uptime_s": round(now - self.started_at, 3) if self.started_at and self.state == "running" else None,
            "last_failure": (
                {"type": self.last_failure_type, "message": self.last_failure_message}
                if self.last_failure_type
                else None
            ),
            "abandoned": self.abandoned,
        }


class TreeView:
    """Written by supervisors on every change; read without asking any actor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, TreeNode] = {}
        self._supervisor_restarts: dict[str, int] = {}

    def put(self, node: TreeNode) -> None:
        """Insert or replace the node at node.path."""
        with self._lock:
            self._nodes[node.path] = node

    def update(self, path: str, **changes: Any) -> None:
        """Change some fields of an existing node (no-op when absent)."""
        with self._lock:
            node = self._nodes.get(path)
            if node is not None:
                self._nodes[path] = replace(node, **changes)

    def remove(self, path: str) -> None:
        """Forget a node and everything below it."""
        with self._lock:
            for key in [k for k in self._nodes if k == path or k.startswith(path + "/")]:
                del self._nodes[key]

    def count_restart(self, supervisor_path: str) -> None:
        """A supervisor restarted one of its children (or a group: counted once)."""
        with self._lock:
            self._supervisor_restarts[supervisor_path] = self._supervisor_restarts.get(supervisor_path, 0) + 1

    def snapshot(self) -> list[TreeNode]:
        """Every node, sorted by path."""
        with self._lock:
            return [self._nodes[k] for k in sorted(self._nodes)]

    def get(self, path: str) -> TreeNode | None:
        """One node, or None."""
        with self._lock:
            return self._nodes.get(path)

    def supervisor_restarts(self) -> dict[str, int]:
        """Restart counts per supervisor path (for fieldwatch_supervisor_restarts_total)."""
        with self._lock:
            return dict(self._supervisor_restarts)
