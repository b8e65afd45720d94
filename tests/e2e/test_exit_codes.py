"""Exit code 3: the root supervisor gives up after its intensity is exceeded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.actors.opcua.opcua_sim import SimProcess
from tests.e2e.daemon_proc import DaemonProc

SUPERVISION = """
root: {strategy: one_for_one, intensity: {max_restarts: 0, within_s: 60}}
sites: {intensity: {max_restarts: 0, within_s: 60}}
defaults:
  backoff: {initial_s: 0.1, max_s: 0.5}
  health_check: {interval_s: 0.5, timeout_s: 2, failures: 1}
"""


@pytest.fixture
def stale_server() -> Iterator[SimProcess]:
    sim = SimProcess("--bad-after", "1")
    sim.start()
    yield sim
    sim.kill()


def test_root_gives_up_with_exit_code_3(tmp_path: Any, stale_server: SimProcess) -> None:
    (tmp_path / "supervision.yaml").write_text(SUPERVISION)
    config = f"""
storage: {{url: "sqlite:///@DIR@/fieldwatch.db"}}
http: {{listen: "127.0.0.1:@PORT@", token: "${{FIELDWATCH_TOKEN}}"}}
logging: {{file: "@DIR@/fieldwatch.log"}}
sites:
  - name: plant
    endpoints:
      - name: plc
        kind: opcua
        url: {stale_server.url}
        timeout_s: 1
        stale_after_s: 1
        nodes: [{{id: "ns=2;s=Counter", name: counter, poll_s: 0.2}}]
"""
    daemon = DaemonProc(str(tmp_path), config).start()
    try:
        # values go bad -> stale -> the health check fails -> the actor is replaced: one restart
        # for the site supervisor (max 0) -> it fails to root (max 0) -> root gives up.
        assert daemon.wait_exit(60) == 3
        with open(os.path.join(str(tmp_path), "fieldwatch.log"), encoding="utf-8") as handle:
            log = handle.read()
        assert "root supervisor gave up" in log
    finally:
        daemon.kill()


def test_on_exhausted_restart_rebuilds_the_tree(tmp_path: Any, stale_server: SimProcess) -> None:
    (tmp_path / "supervision.yaml").write_text(SUPERVISION.replace("max_restarts: 0, within_s: 60}}", "max_restarts: 0, within_s: 60}, on_exhausted: restart}", 1))
    config = f"""
storage: {{url: "sqlite:///@DIR@/fieldwatch.db"}}
http: {{listen: "127.0.0.1:@PORT@", token: "${{FIELDWATCH_TOKEN}}"}}
logging: {{file: "@DIR@/fieldwatch.log"}}
sites:
  - name: plant
    endpoints:
      - name: plc
        kind: opcua
        url: {stale_server.url}
        timeout_s: 1
        stale_after_s: 1
        nodes: [{{id: "ns=2;s=Counter", name: counter, poll_s: 0.2}}]
  - name: net
    endpoints:
      - {{name: lo, kind: icmp, host: 127.0.0.1, interval_s: 1, timeout_s: 0.5}}
"""
    daemon = DaemonProc(str(tmp_path), config).start()
    try:
        log_path = os.path.join(str(tmp_path), "fieldwatch.log")
        daemon.wait(lambda: "restarting the whole tree" in open(log_path, encoding="utf-8").read(), 60, "the tree restart")
        # The process stays up and serves the rebuilt tree.
        daemon.wait_state("net", "lo", "up", 20)
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        daemon.kill()
