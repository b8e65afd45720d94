"""The daemon as a process against careless and hostile API clients (issue 14 items 2, 3, 4, 6, 8, 10, 11)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.daemon_proc import DaemonProc

# `interval_s: 1` alone: the default timeout (1 s) may equal the interval (item 11).
CONFIG = """
instance: hostile
storage:
  url: sqlite:///@DIR@/fieldwatch.db
http:
  listen: 127.0.0.1:@PORT@
  token: ${FIELDWATCH_TOKEN}
logging:
  file: @DIR@/fieldwatch.log
sites:
  - name: net
    endpoints:
      - {name: lo1, kind: icmp, host: 127.0.0.1, interval_s: 1}
"""

_COLLECTIONS = ("events", "alerts", "readings", "topics", "parse-errors")


@pytest.fixture
def daemon(tmp_path: Any) -> Iterator[DaemonProc]:
    proc = DaemonProc(str(tmp_path), CONFIG).start()
    yield proc
    proc.kill()


def _site(name: str, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"name": name, "endpoints": [{"name": "p", "kind": "icmp", "host": host, "interval_s": 5}]}


def _healthz_seconds(daemon: DaemonProc) -> float:
    began = time.monotonic()
    with urllib.request.urlopen(daemon.url + "/healthz", timeout=2) as resp:
        assert resp.status == 200
    return time.monotonic() - began


def test_icmp_interval_of_one_second_alone_is_accepted(daemon: DaemonProc) -> None:
    """Item 11: the daemon starts on `interval_s: 1` without timeout_s; its timeout is 1 s."""
    ep = daemon.wait_state("net", "lo1", "up", 15)
    assert ep["config"]["interval_s"] == 1 and ep["config"]["timeout_s"] == 1


def test_a_lone_surrogate_is_refused_and_stores_nothing(daemon: DaemonProc) -> None:
    """Item 2: 400 before anything is stored; the listing stays 200 for everyone, also after a restart."""
    status, body = daemon.request("POST", "/api/v1/sites", _site("poison", "\ud800"))
    assert status == 400 and "surrogate" in body["description"], body
    status, body = daemon.request("POST", "/api/v1/topics/enable", {"site": "net", "endpoint": "lo1",
                                                                  "topic": "a\ud800"})  # fmt: skip
    assert status == 400 and "surrogate" in body["description"], body
    status, body = daemon.request("POST", "/api/v1/sites", _site("nul", "a\x00b"))
    assert status == 400 and "NUL" in body["description"], body
    names = [s["name"] for s in daemon.get("/api/v1/sites")["items"]]
    assert names == ["net"]
    assert daemon.request("GET", "/api/v1/sites/poison", token=None)[0] == 404


def test_a_stored_surrogate_no_longer_poisons_the_listing(tmp_path: Any) -> None:
    """Item 2 (defence): a site an older version stored with a lone surrogate: the listing stays 200,
    the site is listed without endpoints (not started, the log says why) and can be deleted."""
    daemon = DaemonProc(str(tmp_path), CONFIG).start()
    try:
        assert daemon.request("POST", "/api/v1/sites", _site("old"))[0] == 201
    finally:
        daemon.kill()
    db = sqlite3.connect(os.path.join(str(tmp_path), "fieldwatch.db"))
    with db:  # what the old daemon stored for `"host": "\ud800"`
        (config,) = db.execute("SELECT config FROM endpoint WHERE name = 'p'").fetchone()
        db.execute("UPDATE endpoint SET config = ? WHERE name = 'p'", (config.replace("127.0.0.1", "\\ud800"),))
    db.close()
    daemon = DaemonProc(str(tmp_path), CONFIG).start()
    try:
        status, body = daemon.request("GET", "/api/v1/sites", token=None)
        assert status == 200, body
        sites = {s["name"]: s for s in body["items"]}
        assert sites["old"]["endpoints"] == [] and [ep["name"] for ep in sites["net"]["endpoints"]] == ["lo1"]
        assert daemon.request("DELETE", "/api/v1/sites/old")[0] == 204
        assert [s["name"] for s in daemon.get("/api/v1/sites")["items"]] == ["net"]
        with open(os.path.join(str(tmp_path), "fieldwatch.log"), encoding="utf-8") as log:
            assert "site old: stored config is invalid" in log.read()
    finally:
        daemon.kill()


def test_a_100000_character_name_is_refused_at_once_and_healthz_keeps_answering(daemon: DaemonProc) -> None:
    """Item 3: rejected in well under a second; /healthz answers throughout."""
    done = threading.Event()
    result: dict[str, Any] = {}

    def post() -> None:
        began = time.monotonic()
        result["status"], result["body"] = daemon.request("POST", "/api/v1/sites", _site("a" * 100_000))
        result["seconds"] = time.monotonic() - began
        done.set()

    thread = threading.Thread(target=post)
    thread.start()
    worst = 0.0
    while not done.is_set():
        worst = max(worst, _healthz_seconds(daemon))
    thread.join(10)
    assert result["status"] == 400 and "longer than" in result["body"]["description"]
    assert result["seconds"] < 1.0 and worst < 1.0, (result["seconds"], worst)


def test_cursors_beyond_64_bits_are_400_on_every_collection(daemon: DaemonProc) -> None:
    """Item 4: an id >= 2**63 (or a key that is no finite number) is the client's 400, never a 500."""
    for path in _COLLECTIONS:
        kind = path.replace("-", "_")
        for key, row_id in ((0, 2**63), (0, -(2**63) - 1), (1e308 * 10, 1), (0, 10**30)):
            raw = json.dumps([kind, key, row_id]).encode()
            cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            status, body = daemon.request("GET", f"/api/v1/{path}?cursor={cursor}", token=None)
            assert status == 400, (path, key, row_id, status, body)
        status, _ = daemon.request("GET", f"/api/v1/{path}?limit=", token=None)
        assert status == 400, path  # item 7: an empty parameter is a bad one


def test_put_needs_the_whole_site(daemon: DaemonProc) -> None:
    """Item 6: `{}` is a 400 and the endpoints stay; an explicit empty list removes them."""
    assert daemon.request("POST", "/api/v1/sites", _site("whole"))[0] == 201
    status, body = daemon.request("PUT", "/api/v1/sites/whole", {})
    assert status == 400 and "endpoints" in body["description"] and "name" in body["description"], body
    assert [ep["name"] for ep in daemon.get("/api/v1/sites/whole")["endpoints"]] == ["p"]
    status, body = daemon.request("PUT", "/api/v1/sites/whole", {"name": "whole", "endpoints": []})
    assert status == 200 and body["endpoints"] == []


def test_listing_never_404s_while_sites_are_deleted(daemon: DaemonProc) -> None:
    """Item 8: three clients create and delete sites in a loop; 400 listings meanwhile are all 200."""
    stop = threading.Event()

    def churn(worker: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"race{worker}-{i % 2}"
            daemon.request("POST", "/api/v1/sites", _site(name))
            daemon.request("DELETE", f"/api/v1/sites/{name}")
            i += 1

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        statuses = [daemon.request("GET", "/api/v1/sites", token=None)[0] for _ in range(400)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]


def test_database_files_are_private(daemon: DaemonProc) -> None:
    """Item 10: the SQLite file and its WAL and SHM are created 0600 (they hold API sites' passwords)."""
    assert daemon.request("POST", "/api/v1/sites", _site("private"))[0] == 201
    base = os.path.join(daemon.workdir, "fieldwatch.db")
    found = [p for p in (base, base + "-wal", base + "-shm") if os.path.exists(p)]
    assert base in found and len(found) == 3, found
    for path in found:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (path, oct(os.stat(path).st_mode))
