"""Servers the tests start as child processes: each prints a `READY <words...>` line once serving."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["start_until_ready"]


def start_until_ready(
    cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str], lines: list[str], timeout_s: float, what: str,
    start_new_session: bool = False,
) -> tuple[subprocess.Popen[str], list[str]]:  # fmt: skip
    """Start `cmd` and wait for its READY line: (the process, the words after READY).

    Every output line goes to `lines` (kept while the process runs). A process that exits,
    or says nothing READY within `timeout_s`, is killed: RuntimeError with its last lines.
    """
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=start_new_session)  # fmt: skip
    ready = threading.Event()
    words: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("READY ") and not ready.is_set():
                words[:] = line.split()[1:]
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()  # SIGKILL ends a stopped process too
            proc.wait(timeout=5)
            raise RuntimeError(f"{what} did not start:\n" + "\n".join(lines[-30:]))
    return proc, words
