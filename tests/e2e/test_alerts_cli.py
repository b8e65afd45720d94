"""`fieldwatch alerts [--all]` as a process, against a real daemon through HTTP (SPEC section 8)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.demo import SILENT_ADDRESS
from tests.e2e.daemon_proc import DaemonProc
from tests.waiting import wait_for

CONFIG = f"""
storage: {{url: "sqlite:///@DIR@/fieldwatch.db"}}
http: {{listen: "127.0.0.1:@PORT@", token: "${{FIELDWATCH_TOKEN}}"}}
sites:
  - name: plant
    endpoints:
      - {{name: lo, kind: icmp, host: 127.0.0.1, interval_s: 1, timeout_s: 0.5}}
      - {{name: silent, kind: icmp, host: "{SILENT_ADDRESS}", interval_s: 1, timeout_s: 0.5}}
"""


@pytest.fixture
def daemon(tmp_path: Any) -> Iterator[DaemonProc]:
    proc = DaemonProc(str(tmp_path), CONFIG).start()
    yield proc
    proc.kill()


def _alerts(daemon: DaemonProc, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "fieldwatch", "alerts", "--url", daemon.url, *args],
                          capture_output=True, text=True, timeout=30, env=daemon.env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _active(daemon: DaemonProc) -> list[dict[str, Any]]:
    return list(daemon.get("/api/v1/alerts?active=true")["items"])


def test_alerts_active_and_all_newest_first(daemon: DaemonProc) -> None:
    daemon.wait_state("plant", "lo", "up", 20)
    daemon.wait_state("plant", "silent", "down", 20)
    wait_for(lambda: _active(daemon), 10, what="the down alert stored")
    first = _alerts(daemon)
    assert first[0].split()[:5] == ["TRIGGERED", "AGE", "SEVERITY", "SITE/ENDPOINT", "CONDITION"]
    assert len(first) == 2 and "plant/silent" in first[1] and " down " in first[1]
    assert "plant/lo" not in "\n".join(first)  # an up endpoint has no alert

    # disabling resolves it: no active alert, but --all still lists it as resolved
    assert daemon.request("POST", "/api/v1/endpoints/plant/silent/disable")[0] == 202
    wait_for(lambda: not _active(daemon), 10, what="the alert resolved")
    assert _alerts(daemon) == ["no active alerts"]
    resolved = _alerts(daemon, "--all")
    assert "RESOLVED" in resolved[0] and len(resolved) == 2 and " ago " in resolved[1]

    # enabled again, down again: a new active alert, listed first by --all (newest first)
    assert daemon.request("POST", "/api/v1/endpoints/plant/silent/enable")[0] == 202
    wait_for(lambda: _active(daemon), 20, what="a new down alert")
    every = _alerts(daemon, "--all")
    assert len(every) == 3 and " active " in every[1] and " ago " in every[2]
    triggered = [line.split()[0] for line in every[1:]]
    assert triggered == sorted(triggered, reverse=True) and triggered[0] > triggered[1]
    assert len(_alerts(daemon)) == 2


def test_logs_without_a_log_file(daemon: DaemonProc) -> None:
    """No `logging.file` in the config: `fieldwatch logs` (and -f) read the daemon's in-memory lines."""
    daemon.wait_state("plant", "silent", "down", 20)
    done = subprocess.run([sys.executable, "-m", "fieldwatch", "logs", "--lines", "50", "--url", daemon.url],
                          capture_output=True, text=True, timeout=30, env=daemon.env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fieldwatch started" in done.stdout and "[sites/plant/silent]" in done.stdout

    follow = subprocess.Popen([sys.executable, "-m", "fieldwatch", "logs", "-f", "--lines", "1", "--site", "plant",
                               "--url", daemon.url], stdout=subprocess.PIPE, text=True, env=daemon.env)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follow.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: lines, 15, what="the stream open (its first line printed)")
        before = len(lines)
        # disabled, enabled again: connecting -> down is logged by the endpoint's actor
        assert daemon.request("POST", "/api/v1/endpoints/plant/silent/disable")[0] == 202
        assert daemon.request("POST", "/api/v1/endpoints/plant/silent/enable")[0] == 202
        wait_for(lambda: any("[sites/plant/silent] connecting -> down" in line for line in lines[before:]), 15,
                 what="the followed line")
        assert all("[sites/plant/" in line for line in lines if line.strip() and not line.startswith(" "))
    finally:
        follow.terminate()
        follow.wait(10)
