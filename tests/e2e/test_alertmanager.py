"""The notification path end to end: fieldwatch -> Prometheus (examples/alerts.yml) ->
Alertmanager (examples/alertmanager.yml) -> a webhook receiver in this test.

An MQTT endpoint whose broker (a private Mosquitto) is killed goes down; the receiver gets
a firing FieldwatchEndpointDown with the site/endpoint labels and a link back to the status
page; the broker comes back and the receiver gets the resolution. The test's copies of the
configs are rewritten for speed: every rule's `for:` becomes 0s, scrape and evaluation every
1 s, Alertmanager's group_wait/group_interval 1 s, and the receivers point at this test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon_proc import DaemonProc, free_port
from tests.mosquitto import MosquittoBroker, mosquitto_binary
from tests.waiting import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


class Receiver:
    """A webhook receiver: every POSTed Alertmanager notification, in arrival order."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with received.lock:
                    received.notifications.append(json.loads(body) | {"_path": self.path})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def find(self, match: Callable[[dict[str, Any], dict[str, Any]], bool]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        with self.lock:
            for note in self.notifications:
                for alert in note.get("alerts", []):
                    if match(note, alert):
                        return note, alert
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _process(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


def test_endpoint_down_reaches_the_receiver_and_recovery_resolves_it(tmp_path: Path, receiver: Receiver) -> None:
    prometheus = shutil.which("prometheus")
    missing = [name for name, path in (("prometheus", prometheus), ("prometheus-alertmanager", ALERTMANAGER),
                                       ("mosquitto", mosquitto_binary())) if not path or not Path(path).exists()]  # fmt: skip
    if missing:
        print(f"SKIP reason: {', '.join(missing)} not installed (scripts/test.sh installs them)")
        pytest.skip(f"{missing} not installed")
    assert prometheus is not None
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    config = f"""
storage: {{url: "sqlite:///@DIR@/fieldwatch.db"}}
http: {{listen: "127.0.0.1:@PORT@", token: "${{FIELDWATCH_TOKEN}}"}}
sites:
  - name: plant
    endpoints:
      - name: broker
        kind: mqtt
        host: 127.0.0.1
        port: {broker.port}
        topics: ["x/#"]
        supervision: {{backoff: {{initial_s: 0.2, max_s: 1}}}}
"""
    (tmp_path / "daemon").mkdir()
    daemon = DaemonProc(str(tmp_path / "daemon"), config)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        daemon.start()
        daemon.wait_state("plant", "broker", "up", 20)

        # Alertmanager: the shipped config, receivers pointed at this test, groups flushed every second.
        am_port = free_port()
        am_config = EXAMPLES.joinpath("alertmanager.yml").read_text(encoding="utf-8")
        am_config = am_config.replace("http://127.0.0.1:5001", f"http://127.0.0.1:{receiver.port}")
        am_config = re.sub(r"(group_wait|group_interval): \S+", r"\1: 1s", am_config)
        (tmp_path / "alertmanager.yml").write_text(am_config)
        procs.append(_process([
            ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
        ], tmp_path / "alertmanager.log"))  # fmt: skip
        wait_for(lambda: _ready(f"http://127.0.0.1:{am_port}/-/ready"), 30, what="Alertmanager ready")

        # Prometheus: the shipped rules with every `for:` at 0s, scraping the daemon every second.
        rules = re.sub(r"\bfor: \S+", "for: 0s", EXAMPLES.joinpath("alerts.yml").read_text(encoding="utf-8"))
        (tmp_path / "alerts.yml").write_text(rules)
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [alerts.yml]\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n"
            f"scrape_configs:\n  - job_name: fieldwatch\n    static_configs: [{{targets: ['127.0.0.1:{daemon.port}']}}]\n"
        )
        procs.append(_process([
            prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ], tmp_path / "prometheus.log"))  # fmt: skip
        wait_for(lambda: _ready(f"http://127.0.0.1:{prom_port}/-/ready"), 30, what="Prometheus ready")

        broker.kill()  # the field link dies
        daemon.wait_state("plant", "broker", "down", 15)
        down_at = time.monotonic()

        def is_down(note: dict[str, Any], alert: dict[str, Any]) -> bool:
            labels = alert["labels"]
            return (alert["status"] == "firing" and labels.get("alertname") == "FieldwatchEndpointDown"
                    and labels.get("endpoint") == "broker")  # fmt: skip

        _, alert = wait_for(lambda: receiver.find(is_down), 60, interval=0.2, what="the down alert at the receiver")
        print(f"down -> webhook receiver: {time.monotonic() - down_at:.1f} s")
        assert alert["labels"]["site"] == "plant" and alert["labels"]["kind"] == "mqtt"
        assert alert["labels"]["severity"] == "critical"
        link = alert["annotations"]["page"]
        assert link == f"http://127.0.0.1:{daemon.port}/?site=plant&q=broker", link
        with urllib.request.urlopen(link, timeout=5) as resp:  # the link opens the status page
            assert resp.status == 200 and b'src="/static/page.js"' in resp.read()
        assert receiver.find(lambda n, a: a["status"] == "resolved" and a["labels"].get("endpoint") == "broker") is None

        broker.restart()  # the link comes back
        daemon.wait_state("plant", "broker", "up", 20)
        up_at = time.monotonic()

        def is_resolved(note: dict[str, Any], alert: dict[str, Any]) -> bool:
            labels = alert["labels"]
            return (alert["status"] == "resolved" and labels.get("alertname") == "FieldwatchEndpointDown"
                    and labels.get("endpoint") == "broker" and labels.get("site") == "plant")  # fmt: skip

        wait_for(lambda: receiver.find(is_resolved), 60, interval=0.2, what="the resolution at the receiver")
        print(f"up -> resolution at the webhook receiver: {time.monotonic() - up_at:.1f} s")
    finally:
        for proc in procs:
            _stop(proc)
        daemon.kill()
        broker.kill()
