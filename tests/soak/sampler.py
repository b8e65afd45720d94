"""The sampler: every ~0.5 s, what the daemon says (API and /metrics) and what it uses (/proc).

Each `Sample` records when its requests were sent and answered, the incarnation
it talked to, every endpoint's state as the API and the metrics report it, the
storage queue depth, and the daemon's threads, open fds and RSS.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["EndpointView", "Sample", "Sampler", "fd_kinds", "http_get", "proc_stats"]

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class EndpointView:
    """One endpoint in one sample."""

    state: str
    reason: str | None
    enabled: bool
    generation: int
    restarts: int
    reconnects: int


@dataclass(slots=True)
class Sample:
    """One observation of the daemon (ok False: the API did not answer; `error` says why)."""

    t0: float
    t1: float
    incarnation: int
    pid: int
    ok: bool
    error: str = ""
    api: dict[Key, EndpointView] = field(default_factory=dict)
    metric_up: dict[Key, float] = field(default_factory=dict)
    metric_state: dict[Key, str] = field(default_factory=dict)
    queue_depth: float | None = None
    threads: int | None = None
    fds: int | None = None
    rss_kb: int | None = None
    fd_kinds: tuple[str, ...] = ()  # what the fds are (socket, pipe, eventpoll, file paths), sorted

    def shown_up(self, key: Key) -> bool:
        """Whether the API or the metrics report `key` as up in this sample."""
        view = self.api.get(key)
        return (view is not None and view.state == "up") or self.metric_up.get(key) == 1.0


def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """GET on the daemon; (status, body). Raises OSError/http.client errors when it does not answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def proc_stats(pid: int) -> tuple[int | None, int | None, int | None]:
    """(threads, open fds, RSS in kB) of a process, None where /proc cannot tell."""
    threads = rss = fds = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    return threads, fds, rss


def fd_kinds(pid: int) -> tuple[str, ...]:
    """The open fds of a process by kind: 'socket', 'pipe', 'eventpoll'..., or the file's path."""
    kinds = []
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            kind = target.split(":", 1)[0] if target.startswith(("socket:", "pipe:")) else target
            kinds.append(kind.removeprefix("anon_inode:").strip("[]"))
    except OSError:
        return ()
    return tuple(sorted(kinds))


def _parse_sites(body: bytes) -> dict[Key, EndpointView]:
    views: dict[Key, EndpointView] = {}
    for site in json.loads(body)["items"]:
        for ep in site["endpoints"]:
            views[(site["name"], ep["name"])] = EndpointView(
                ep["state"], ep.get("reason"), bool(ep["enabled"]), int(ep["generation"]), int(ep["restarts"]),
                int(ep["reconnects"]),
            )
    return views


def _parse_metrics(body: bytes, sample: Sample) -> None:
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "fieldwatch_endpoint_up":
            for s in family.samples:
                sample.metric_up[(s.labels["site"], s.labels["endpoint"])] = s.value
        elif family.name == "fieldwatch_endpoint_state":
            for s in family.samples:
                if s.value == 1.0:
                    sample.metric_state[(s.labels["site"], s.labels["endpoint"])] = s.labels["state"]
        elif family.name == "fieldwatch_storage_queue_depth":
            sample.queue_depth = family.samples[0].value if family.samples else None


class Sampler:
    """A thread sampling the daemon every `period_s` (drift-free) until stopped."""

    def __init__(self, env: Any, period_s: float = 0.5) -> None:
        self.env = env
        self.period_s = period_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(15)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self.sample_once())
            due += self.period_s
            self._stop.wait(max(0.0, due - time.monotonic()))
            if time.monotonic() - due > 5 * self.period_s:  # fell far behind (a slow answer): do not burst
                due = time.monotonic()

    def sample_once(self) -> Sample:
        """One sample of the current incarnation."""
        inc = self.env.current
        daemon = self.env.daemon
        t0 = time.time()
        sample = Sample(t0, t0, inc.index if inc else -1, inc.pid if inc else 0, False)
        try:
            status, body = http_get(daemon.port, "/api/v1/sites")
            if status != 200:
                raise ValueError(f"/api/v1/sites answered {status}: {body[:200]!r}")
            sample.api = _parse_sites(body)
            status, body = http_get(daemon.port, "/metrics")
            if status != 200:
                raise ValueError(f"/metrics answered {status}: {body[:200]!r}")
            _parse_metrics(body, sample)
            sample.ok = True
        except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
            sample.error = f"{type(err).__name__}: {err}"
        sample.t1 = time.time()
        if sample.pid:
            sample.threads, sample.fds, sample.rss_kb = proc_stats(sample.pid)
            sample.fd_kinds = fd_kinds(sample.pid)
        return sample
