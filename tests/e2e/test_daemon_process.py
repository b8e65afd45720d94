"""The daemon as a real process: commands take effect at once, signals stop it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.daemon_proc import TOKEN, DaemonProc

CONFIG = """
instance: e2e
storage:
  url: sqlite:///@DIR@/fieldwatch.db
http:
  listen: 127.0.0.1:@PORT@
  token: ${FIELDWATCH_TOKEN}
logging:
  file: @DIR@/fieldwatch.log
  level: debug
sites:
  - name: net
    endpoints:
      - {name: lo1, kind: icmp, host: 127.0.0.1, interval_s: 1, timeout_s: 0.5}
      - {name: lo2, kind: icmp, host: 127.0.0.2, interval_s: 1, timeout_s: 0.5}
  - name: other
    endpoints:
      - {name: lo3, kind: icmp, host: 127.0.0.3, interval_s: 1, timeout_s: 0.5}
"""


@pytest.fixture
def daemon(tmp_path: Any) -> Iterator[DaemonProc]:
    proc = DaemonProc(str(tmp_path), CONFIG).start()
    yield proc
    proc.kill()


def test_disable_and_enable_a_site_take_effect_at_once(daemon: DaemonProc) -> None:
    daemon.wait_state("net", "lo1", "up", 15)
    daemon.wait_state("other", "lo3", "up", 15)
    status, site = daemon.request("POST", "/api/v1/sites/net/disable")
    assert status == 202
    assert site["enabled"] is False
    # The very next GET: actors stopped, endpoints disabled.
    body = daemon.get("/api/v1/sites/net")
    assert [ep["state"] for ep in body["endpoints"]] == ["disabled", "disabled"]
    tree = daemon.get("/api/v1/tree")["items"]
    assert not [n for n in tree if n["path"].startswith("root/sites/net")]
    # The other site was not touched.
    assert daemon.endpoint("other", "lo3")["generation"] == 1
    status, site = daemon.request("POST", "/api/v1/sites/net/enable")
    assert status == 202 and site["enabled"] is True
    states = {ep["state"] for ep in daemon.get("/api/v1/sites/net")["endpoints"]}
    assert states <= {"connecting", "up"} and "disabled" not in states
    daemon.wait_state("net", "lo1", "up", 15)
    # The stored flag survives a restart of the daemon.
    daemon.request("POST", "/api/v1/sites/net/disable")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(15) == 0
    daemon.start()
    assert daemon.get("/api/v1/sites/net")["enabled"] is False
    assert daemon.endpoint("net", "lo1")["state"] == "disabled"


def test_mutating_routes_need_the_token(daemon: DaemonProc) -> None:
    assert daemon.request("POST", "/api/v1/sites/net/disable", token=None)[0] == 401
    assert daemon.request("POST", "/api/v1/sites/net/disable", token="wrong-token")[0] == 403
    assert daemon.request("POST", "/api/v1/sites/nope/disable")[0] == 404
    assert TOKEN not in daemon.output()


def test_sigint_stops_with_exit_code_zero(daemon: DaemonProc) -> None:
    daemon.wait_state("net", "lo1", "up", 15)
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit(10) == 0
    with open(daemon.workdir + "/fieldwatch.log", encoding="utf-8") as handle:
        log = handle.read()
    assert "fieldwatch stopped" in log
    assert TOKEN not in log


def test_runtime_add_and_delete_touch_no_other_site(daemon: DaemonProc) -> None:
    for site, name in (("net", "lo1"), ("net", "lo2"), ("other", "lo3")):
        daemon.wait_state(site, name, "up", 15)
    before = {(s, n): daemon.endpoint(s, n) for s, n in (("net", "lo1"), ("net", "lo2"), ("other", "lo3"))}
    new_site = {"name": "added", "endpoints": [{"name": "lo9", "kind": "icmp", "host": "127.0.0.9", "interval_s": 1, "timeout_s": 0.5}]}
    status, body = daemon.request("POST", "/api/v1/sites", new_site)
    assert status == 201, body
    daemon.wait_state("added", "lo9", "up", 15)
    status, _ = daemon.request("DELETE", "/api/v1/sites/added")
    assert status == 204
    assert daemon.request("GET", "/api/v1/sites/added")[0] == 404
    for key, old in before.items():
        now = daemon.endpoint(*key)
        assert (now["generation"], now["reconnects"], now["restarts"]) == (
            old["generation"],
            old["reconnects"],
            old["restarts"],
        ), key


def test_bad_site_body_is_a_400_naming_the_key(daemon: DaemonProc) -> None:
    bad = {"name": "x", "endpoints": [{"name": "e", "kind": "icmp", "host": "127.0.0.1", "interval_s": -1}]}
    status, body = daemon.request("POST", "/api/v1/sites", bad)
    assert status == 400
    assert "interval_s" in body["description"]


def test_check_config_and_run_exit_2_on_a_bad_config(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sites:\n  - name: a\n    endpoints:\n      - {name: e, kind: icmp, hots: x}\n")
    result = subprocess.run([sys.executable, "-m", "fieldwatch", "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "bad.yaml:4" in result.stderr and "hots" in result.stderr


def test_runtime_add_with_twenty_endpoints_up(tmp_path: Any) -> None:
    endpoints = "\n".join(
        f"      - {{name: h{i}, kind: icmp, host: 127.0.1.{i}, interval_s: 1, timeout_s: 0.5}}" for i in range(1, 21)
    )
    config = (
        "storage: {url: 'sqlite:///@DIR@/fieldwatch.db'}\n"
        "http: {listen: '127.0.0.1:@PORT@', token: '${FIELDWATCH_TOKEN}'}\n"
        "logging: {file: '@DIR@/fieldwatch.log'}\n"
        "sites:\n  - name: big\n    endpoints:\n" + endpoints + "\n"
    )
    daemon = DaemonProc(str(tmp_path), config).start()
    try:
        daemon.wait(
            lambda: all(ep["state"] == "up" for ep in daemon.get("/api/v1/sites/big")["endpoints"]), 20, "20 endpoints up"
        )
        before = {ep["name"]: (ep["generation"], ep["reconnects"], ep["restarts"]) for ep in daemon.get("/api/v1/sites/big")["endpoints"]}
        assert len(before) == 20
        site = {"name": "new", "endpoints": [{"name": "n1", "kind": "icmp", "host": "127.0.2.1", "interval_s": 1, "timeout_s": 0.5}]}
        status, _ = daemon.request("POST", "/api/v1/sites", site)
        assert status == 201
        daemon.wait_state("new", "n1", "up", 15)
        status, _ = daemon.request("PUT", "/api/v1/sites/new", dict(site, endpoints=[dict(site["endpoints"][0], host="127.0.2.2")]))
        assert status == 200
        daemon.wait_state("new", "n1", "up", 15)
        after = {ep["name"]: (ep["generation"], ep["reconnects"], ep["restarts"]) for ep in daemon.get("/api/v1/sites/big")["endpoints"]}
        assert after == before
        assert all(ep["state"] == "up" for ep in daemon.get("/api/v1/sites/big")["endpoints"])
    finally:
        daemon.kill()
