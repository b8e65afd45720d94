"""Log tailing for /api/v1/logs: the last N lines, then follow across rotation; plus NDJSON streaming.

A record is a line that starts a log entry (text format `TIME LEVEL logger: [path] msg`,
or a JSON object with `level` and `path`); continuation lines (tracebacks) belong to
the record above them and are filtered with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from fieldwatch.http.params import LEVELS

__all__ = ["FilePosition", "LogFilter", "LogFollower", "NdjsonStream", "StreamStats", "ndjson_stream", "tail"]

logger = logging.getLogger(__name__)

_TEXT_RECORD = re.compile(r"^\S+\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\S+: (?:\[([^\]\s]+)\] )?")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_MAX_TAIL_BYTES = 32 * 1024 * 1024
_FIRST_WINDOW = 64 * 1024


@dataclass(slots=True)
class LogFilter:
    """Keeps records at `level` or above and/or of one site (path `sites/<site>[/...]`)."""

    level: str | None = None
    site: str | None = None
    _current: tuple[str | None, str | None] = (None, None)

    def reset(self) -> None:
        """Forget the record being continued."""
        self._current = (None, None)

    def line(self, raw: str) -> dict[str, Any] | None:
        """Classify one line (stateful: continuations inherit); the JSON item, or None if filtered out."""
        level, path = _classify(raw)
        if level is None:
            level, path = self._current  # a continuation line of the record above
        else:
            self._current = (level, path)
        if self.level is not None and (level is None or _RANK.get(level, -1) < _RANK[self.level]):
            return None
        if self.site is not None:
            prefix = f"sites/{self.site}"
            if path is None or not (path == prefix or path.startswith(prefix + "/")):
                return None
        return {"line": raw, "level": level, "path": path}


def _classify(raw: str) -> tuple[str | None, str | None]:
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            return None, None
        if isinstance(data, dict) and isinstance(data.get("level"), str):
            path = data.get("path")
            return data["level"].lower(), path if isinstance(path, str) else None
        return None, None
    match = _TEXT_RECORD.match(raw)
    if match is None:
        return None, None
    return match.group(1).lower(), match.group(2)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where a tail ended: the file's identity and the offset after its last complete line."""

    dev: int
    ino: int
    offset: int


def tail(path: str, n: int, filt: LogFilter) -> tuple[list[dict[str, Any]], FilePosition | None]:
    """The last `n` matching lines of `path` (oldest first) and where following should go on.

    `filt` is left in the state of the last line read, so following continues the same record.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return [], None
    with f:
        st = os.fstat(f.fileno())
        end = st.st_size
        window = _FIRST_WINDOW
        while True:
            start = max(0, end - window)
            f.seek(start)
            data = f.read(end - start)
            complete = data.rfind(b"\n") + 1
            lines = data[:complete].split(b"\n")[:-1]
            if start > 0 and lines:
                lines = lines[1:]  # the window may begin inside a line
            filt.reset()
            items = [item for raw in lines if (item := filt.line(_decode(raw))) is not None]
            if len(items) >= n or start == 0 or window >= _MAX_TAIL_BYTES:
                break
            window *= 4
        return (items[-n:] if n else []), FilePosition(st.st_dev, st.st_ino, start + complete)


class LogFollower:
    """Reads lines appended to `path` from a position, following a rotation or truncation."""

    def __init__(self, path: str, position: FilePosition | None) -> None:
        self._path = path
        self._file: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._pending = b""
        if position is not None:
            self._open(at=position)

    def close(self) -> None:
        """Release the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self, at: FilePosition | None = None) -> bool:
        try:
            f = open(self._path, "rb")
        except FileNotFoundError:
            return False
        st = os.fstat(f.fileno())
        if at is not None and (st.st_dev, st.st_ino) == (at.dev, at.ino) and at.offset <= st.st_size:
            f.seek(at.offset)
        self._file, self._identity, self._pending = f, (st.st_dev, st.st_ino), b""
        return True

    def read_lines(self) -> list[str]:
        """Complete lines written since the last call (possibly from a new file after rotation)."""
        if self._file is None and not self._open():
            return []
        assert self._file is not None
        out: list[str] = []
        if self._rewritten():  # truncated and written again past our offset since the last poll
            self._file.seek(0)
            self._pending = b""
        out += self._take(self._file.read())
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return out  # rotated away and not yet recreated: keep the old file until it is
        if (st.st_dev, st.st_ino) != self._identity:
            out += self._take(self._file.read())  # whatever was written before the rotation
            if self._pending:
                out.append(_decode(self._pending))
            self.close()
            self._open()
            if self._file is not None:
                out += self._take(self._file.read())
        elif st.st_size < self._file.tell():  # truncated in place (copytruncate)
            self._file.seek(0)
            self._pending = b""
            out += self._take(self._file.read())
        return out

    def _rewritten(self) -> bool:
        """At a line boundary the byte before our offset is a newline, unless the file was rewritten."""
        assert self._file is not None
        offset = self._file.tell()
        if offset == 0 or self._pending:
            return False
        self._file.seek(offset - 1)
        before = self._file.read(1)
        if before == b"\n":
            return False
        self._file.seek(offset)
        return True

    def _take(self, data: bytes) -> list[str]:
        if not data:
            return []
        data = self._pending + data
        complete = data.rfind(b"\n") + 1
        self._pending = data[complete:]
        return [_decode(raw) for raw in data[:complete].split(b"\n")[:-1]]


class StreamStats:
    """Counts follow streams: bounded concurrency (each holds a server thread) and test visibility."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.opened = 0
        self.closed = 0

    def acquire(self, maximum: int) -> bool:
        """Take a stream slot; False when `maximum` are open."""
        with self._lock:
            if self.open >= maximum:
                return False
            self.open += 1
            self.opened += 1
            return True

    def release(self) -> None:
        """Give a slot back (the stream ended)."""
        with self._lock:
            self.open -= 1
            self.closed += 1


class NdjsonStream:
    """A WSGI body iterable over a generator; `close()` (called by the server) releases the slot."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> NdjsonStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """End the stream (client gone, server stopping or done); idempotent."""
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def ndjson_stream(
    initial: list[dict[str, Any]],
    poll: Callable[[], list[dict[str, Any]]],
    *,
    stats: StreamStats,
    heartbeat_s: float,
    max_s: float | None,
    poll_s: float = 0.25,
    on_close: Callable[[], None] | None = None,
) -> NdjsonStream:
    """One JSON object per line: `initial`, then whatever `poll()` returns, until the client goes.

    A blank line is written every `heartbeat_s` without news, so a gone client is noticed
    (the server raises on write and closes the stream). The caller took a slot of `stats`;
    it is released when the stream is closed, however it ends.
    """

    def release() -> None:
        stats.release()
        if on_close is not None:
            on_close()

    return NdjsonStream(_chunks(initial, poll, heartbeat_s, max_s, poll_s), release)


def _chunks(
    initial: list[dict[str, Any]],
    poll: Callable[[], list[dict[str, Any]]],
    heartbeat_s: float,
    max_s: float | None,
    poll_s: float,
) -> Iterator[bytes]:
    started = time.monotonic()
    try:
        for item in initial:
            yield _encode(item)
        last_write = time.monotonic()
        while max_s is None or time.monotonic() - started < max_s:
            items = poll()
            for item in items:
                yield _encode(item)
            now = time.monotonic()
            if items:
                last_write = now
            elif now - last_write >= heartbeat_s:
                yield b"\n"
                last_write = now
            time.sleep(poll_s)
    finally:
        logger.debug("follow stream ended after %.1f s", time.monotonic() - started)


def _encode(item: dict[str, Any]) -> bytes:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
