"""Run `fieldwatch run --config FILE` as a real process and talk to its API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from tests.waiting import wait_for

TOKEN = "e2e-token-123456"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProc:
    """A fieldwatch daemon subprocess with a tiny HTTP client."""

    def __init__(self, workdir: str, config_yaml: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = os.path.join(workdir, "fieldwatch.yaml")
        with open(self.config_path, "w", encoding="utf-8") as handle:
            handle.write(config_yaml.replace("@PORT@", str(self.port)).replace("@DIR@", workdir))
        self.env = dict(os.environ, FIELDWATCH_TOKEN=TOKEN, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None
        self.output_path = os.path.join(workdir, "stdout.txt")

    def start(self, wait_ready: bool = True, timeout: float = 30.0) -> DaemonProc:
        out = open(self.output_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fieldwatch", "run", "--config", self.config_path],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
        )
        out.close()
        if wait_ready:
            self.wait(lambda: self.status_of("/readyz") == 200, timeout, "the daemon to be ready")
        return self

    def output(self) -> str:
        with open(self.output_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        """`wait_for` a truthy `predicate()` (a refused request counts as not yet); fails early if the daemon exits."""

        def check() -> Any:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode} while waiting for {what}")
            try:
                return predicate()
            except (OSError, urllib.error.URLError, ValueError):
                return None

        try:
            return wait_for(check, timeout, 0.05, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.output()[-3000:]}") from None

    def request(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw and resp.headers.get_content_type() == "application/json" else raw
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path, token=None)
        assert status == 200, (path, status, body)
        return body

    def status_of(self, path: str) -> int:
        return self.request("GET", path, token=None)[0]

    def endpoint(self, site: str, name: str) -> dict[str, Any]:
        return self.get(f"/api/v1/endpoints/{site}/{name}")

    def wait_state(self, site: str, name: str, state: str, timeout: float) -> dict[str, Any]:
        return self.wait(
            lambda: (ep := self.endpoint(site, name))["state"] == state and ep, timeout, f"{site}/{name} {state}"
        )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
