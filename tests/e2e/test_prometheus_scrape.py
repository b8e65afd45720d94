"""Prometheus itself scrapes a running fieldwatch and its query API sees our series."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.daemon_proc import DaemonProc, free_port

CONFIG = """
storage: {url: "sqlite:///@DIR@/fieldwatch.db"}
http: {listen: "127.0.0.1:@PORT@", token: "${FIELDWATCH_TOKEN}"}
logging: {file: "@DIR@/fieldwatch.log"}
sites:
  - name: net
    endpoints:
      - {name: lo1, kind: icmp, host: 127.0.0.1, interval_s: 1, timeout_s: 0.5}
      - {name: lo2, kind: icmp, host: 127.0.0.2, interval_s: 1, timeout_s: 0.5}
"""


@pytest.fixture
def daemon(tmp_path: Any) -> Iterator[DaemonProc]:
    proc = DaemonProc(str(tmp_path), CONFIG).start()
    yield proc
    proc.kill()


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success"
    return list(body["data"]["result"])


def test_prometheus_scrapes_endpoint_up(daemon: DaemonProc, tmp_path: Any) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        print("SKIP reason: Debian's prometheus binary is not installed (scripts/test.sh installs it)")
        pytest.skip("prometheus binary not installed")
    daemon.wait_state("net", "lo1", "up", 15)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: fieldwatch\n    static_configs: [{{targets: ['127.0.0.1:{daemon.port}']}}]\n"
    )
    data_dir = tmp_path / "prom-data"
    log = open(os.path.join(str(tmp_path), "prometheus.log"), "wb")  # noqa: SIM115
    prom = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        results: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                results = _query(port, "fieldwatch_endpoint_up")
            except OSError:
                results = []
            if {r["metric"].get("endpoint") for r in results} >= {"lo1", "lo2"}:
                break
            time.sleep(0.5)
        by_endpoint = {r["metric"]["endpoint"]: r for r in results}
        assert set(by_endpoint) >= {"lo1", "lo2"}, results
        assert by_endpoint["lo1"]["metric"]["site"] == "net" and by_endpoint["lo1"]["metric"]["kind"] == "icmp"
        assert by_endpoint["lo1"]["value"][1] == "1"
        # The target is healthy from Prometheus' point of view (the exposition parsed).
        assert _query(port, 'up{job="fieldwatch"}')[0]["value"][1] == "1"
    finally:
        prom.terminate()
        prom.wait(10)
        log.close()
