"""`LogRing`: the latest log lines kept in memory, so log tailing works without `logging.file`.

Under systemd the log goes to the journal, not a file; `/api/v1/logs`, `fieldwatch logs`
and the status page's "latest warnings" read this ring instead. Bounded by line count
and line length, so a chatty or hostile source cannot grow it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

__all__ = ["LogRing", "MAX_LINE_CHARS", "RING_LINES"]

#: lines kept (a traceback counts one line per line)
RING_LINES = 5000
#: a longer line is cut here (the file keeps it whole)
MAX_LINE_CHARS = 8192


class LogRing(logging.Handler):
    """A logging handler that keeps the last `capacity` formatted lines with sequence numbers."""

    def __init__(self, capacity: int = RING_LINES) -> None:
        super().__init__()
        self._lines: deque[tuple[int, str]] = deque(maxlen=capacity)
        self._seq = 0
        self._ring_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record and append its lines (a handler must not raise: errors go to handleError)."""
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - logging's contract: report through handleError, never raise
            self.handleError(record)
            return
        with self._ring_lock:
            for line in text.split("\n"):
                self._seq += 1
                self._lines.append((self._seq, line[:MAX_LINE_CHARS]))

    def last_seq(self) -> int:
        """The sequence number of the newest line (0 before the first)."""
        with self._ring_lock:
            return self._seq

    def lines(self, after: int = 0) -> tuple[list[str], int]:
        """Lines newer than sequence `after` (oldest first) and the newest sequence number."""
        with self._ring_lock:
            found = [line for seq, line in self._lines if seq > after]
            return found, self._seq
