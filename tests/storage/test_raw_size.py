"""Acceptance (issue 16): at most 40 bytes on disk per raw reading, measured through the daemon.

A real Daemon (SQLite, all indexes) probes 200 ICMP endpoints on 127.0.0.x every second;
once every endpoint is up, the bytes the database grows by (pages in use, read from a
second connection, so the WAL is counted) are divided by the readings stored meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.harness import Harness
from tests.storage.storage_helpers import ALL_RAW
from tests.waiting import wait_for

ENDPOINTS = 200
READINGS = 12_000  # a minute of probes
MAX_BYTES = 40.0


def _used_bytes(path: Path) -> tuple[int, int]:
    """(bytes of pages in use, raw readings) as a reader sees the database now."""
    conn = sqlite3.connect(path)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        rows = conn.execute(f"SELECT COUNT(*) FROM {ALL_RAW} r").fetchone()[0]  # with the staged rows
        return (pages - free) * size, rows
    finally:
        conn.close()


@pytest.mark.slow
def test_bytes_per_raw_reading_through_the_daemon(tmp_path: Path) -> None:
    endpoints = tuple(
        EndpointConfig(f"h{i}", "icmp", IcmpOptions(f"127.0.{i // 250}.{1 + i % 250}", interval_s=1.0, timeout_s=0.5))
        for i in range(ENDPOINTS)
    )
    harness = Harness(tmp_path)
    path = tmp_path / "fieldwatch.db"
    try:
        daemon = harness.start([SiteConfig("size", endpoints=endpoints)])
        wait_for(lambda: all(harness.state("size", f"h{i}") == "up" for i in range(ENDPOINTS)), 60, 0.2,
                 what="every endpoint up")
        wait_for(lambda: _used_bytes(path)[1] >= ENDPOINTS * 5, 30, 0.2, what="a few probes of each endpoint")
        bytes0, rows0 = _used_bytes(path)
        file0 = os.path.getsize(path) + os.path.getsize(f"{path}-wal")
        wait_for(lambda: _used_bytes(path)[1] - rows0 >= READINGS, 120, 0.5, what=f"{READINGS} more readings")
        harness.flush(30)
        bytes1, rows1 = _used_bytes(path)
        file1 = os.path.getsize(path) + os.path.getsize(f"{path}-wal")
        assert daemon.storage.stats().write_errors_total == 0
    finally:
        harness.stop()
    per_reading = (bytes1 - bytes0) / (rows1 - rows0)
    print(f"\n{rows1 - rows0} raw readings: {per_reading:.1f} bytes each (pages in use; "
          f"database + WAL files grew {(file1 - file0) / (rows1 - rows0):.1f} bytes a reading)")
    assert rows1 - rows0 >= READINGS
    assert per_reading <= MAX_BYTES
