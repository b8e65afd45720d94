"""`fieldwatch demo` as a process: every kind visible through the API within 60 s."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.e2e.daemon_proc import free_port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _run_demo(tmp_path: Any, env: dict[str, str]) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out = open(tmp_path / "demo.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "fieldwatch", "demo", "--listen", f"127.0.0.1:{port}", "--dir", str(tmp_path / "data"),
         "--silent-after", "5", "--offline-after", "3"],
        stdout=out, stderr=subprocess.STDOUT, env=env,
    )
    seen: dict[str, Any] = {"base": base}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "demo.out").read_text()[-3000:]
            try:
                plc = _get(f"{base}/api/v1/endpoints/demo-plant/plc")
                sensors = _get(f"{base}/api/v1/endpoints/demo-plant/sensors")
                loopback = _get(f"{base}/api/v1/endpoints/demo-network/loopback")
                silent = _get(f"{base}/api/v1/endpoints/demo-network/silent")
                alerts = _get(f"{base}/api/v1/alerts?active=true")["items"]
                parse_errors = _get(f"{base}/api/v1/parse-errors?site=demo-plant&limit=5")["items"]
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.5)
                continue
            seen = {"base": base, "plc": plc, "sensors": sensors, "loopback": loopback, "silent": silent, "alerts": alerts,
                    "parse_errors": parse_errors}
            if (
                plc["state"] == "up" and plc["readings"]
                and sensors["state"] == "up" and sensors.get("devices")
                and loopback["state"] == "up"
                and silent["state"] == "down"
                and any(a["endpoint"] == "silent" and a["condition"] == "down" for a in alerts)
                and any(e["endpoint"] == "sensors" and "invalid JSON" in e["error"] and e["sample"]
                        for e in parse_errors)
            ):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"demo not all visible within 60 s: {json.dumps(seen)[:3000]}")
        with urllib.request.urlopen(f"{base}/", timeout=5) as resp:  # the status page it announces
            seen["page"] = resp.read().decode()
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - stopped_at < 5.0
        seen["output"] = (tmp_path / "demo.out").read_text()
        return seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()


def test_demo_with_mosquitto(tmp_path: Any) -> None:
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
    if shutil.which("mosquitto", path=env["PATH"]) is None:
        print("SKIP reason: mosquitto is not installed (scripts/test.sh installs it)")
        pytest.skip("mosquitto not installed")
    seen = _run_demo(tmp_path, env)
    assert "mosquitto broker" in seen["output"]
    assert {d["name"] for d in seen["sensors"]["devices"]} >= {"pump1", "tank1"}


def test_demo_with_the_embedded_broker(tmp_path: Any) -> None:
    # A PATH with the Python interpreter's folder only: no mosquitto anywhere on it.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))
    assert shutil.which("mosquitto", path=env["PATH"]) is None
    seen = _run_demo(tmp_path, env)
    assert "amqtt broker" in seen["output"]
    # the page's URL is the first thing the announcement gives, and it serves the page
    announced = seen["output"].split("fieldwatch demo is running", 1)[1].splitlines()
    assert announced[1].split()[:2] == ["page:", f"{seen['base']}/"]
    assert '<script src="/static/page.js" defer>' in seen["page"]
