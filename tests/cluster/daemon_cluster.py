"""Real `fieldwatch run` processes forming a cluster on the test PostgreSQL (one schema per test)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from tests.cluster.cluster_helpers import Sample
from tests.e2e.daemon_proc import DaemonProc

SITES = tuple(f"s{i}" for i in range(6))


def storage_url(dsn: str, schema: str) -> str:
    """`storage.url` naming the test schema (search_path through libpq's `options`)."""
    return f"{dsn}?options={quote(f'-csearch_path={schema}', safe='')}"


def config_yaml(name: str, url: str, ttl: float, sites: Iterable[str] = SITES) -> str:
    lines = [
        f"instance: {name}",
        f'storage: {{url: "{url}"}}',
        'http: {listen: "127.0.0.1:@PORT@", token: "${FIELDWATCH_TOKEN}"}',
        "logging: {file: '@DIR@/fieldwatch.log', level: info}",
        f"cluster: {{lease_ttl_s: {ttl}}}",
        "sites:",
    ]
    for site in sites:
        lines.append(f"  - name: {site}")
        lines.append("    endpoints:")
        lines.append("      - {name: lo, kind: icmp, host: 127.0.0.1, interval_s: 1, timeout_s: 0.5}")
    return "\n".join(lines) + "\n"


class Instance(DaemonProc):
    """One cluster member: `owned()` from GET /api/v1/cluster, `running()` from the tree."""

    def __init__(self, workdir: str, name: str, url: str, ttl: float, sites: Iterable[str] = SITES) -> None:
        os.makedirs(workdir, exist_ok=True)
        super().__init__(workdir, config_yaml(name, url, ttl, sites))
        self.name = name
        self.frozen = False

    def owned(self) -> dict[str, int]:
        """What this instance claims now: site -> epoch."""
        body = self.get("/api/v1/cluster")
        return {s["site"]: s["epoch"] for s in body["sites"] if s["owner"] == self.name}

    def metrics_text(self) -> str:
        """This instance's /metrics."""
        status, text = self.request("GET", "/metrics", token=None)
        assert status == 200
        return text.decode() if isinstance(text, bytes) else str(text)

    def metrics_owned(self) -> set[str]:
        """Sites with fieldwatch_site_owned 1 in this instance's metrics."""
        out = set()
        for line in self.metrics_text().splitlines():
            if line.startswith("fieldwatch_site_owned{") and line.rstrip().endswith(" 1.0"):
                out.add(line.split('site="', 1)[1].split('"', 1)[0])
        return out

    def running(self) -> set[str]:
        """Sites whose supervisor runs in this instance's tree."""
        paths: list[str] = []
        _paths(self.get("/api/v1/tree"), paths)
        return {p.split("sites/", 1)[1].split("/", 1)[0] for p in paths if "sites/" in p}


def stop_all(instances: Iterable[Instance]) -> None:
    """Test teardown: wake a frozen instance, then kill every one."""
    for inst in instances:
        if inst.frozen and inst.proc is not None:
            inst.proc.send_signal(signal.SIGCONT)
        inst.kill()


def _paths(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("path"), str):
            out.append(node["path"])
        for value in node.values():
            _paths(value, out)
    elif isinstance(node, list):
        for value in node:
            _paths(value, out)


class HttpSampler:
    """Polls every live, unfrozen instance's claims; samples are stamped when the answer arrived."""

    def __init__(self, instances: list[Instance], interval: float = 0.1) -> None:
        self.instances = instances
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-sampler", daemon=True)

    def __enter__(self) -> HttpSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            for inst in list(self.instances):
                if inst.frozen or inst.proc is None or inst.proc.poll() is not None:
                    continue
                sent = time.monotonic()
                try:
                    owned = inst.owned()
                except (OSError, AssertionError, ValueError):
                    continue
                received = time.monotonic()
                if received - sent < 1.0:  # a slower answer (one in flight across a SIGSTOP) has no clear time
                    self.samples.append(Sample(received, inst.name, owned))
            self._stop.wait(self.interval)
