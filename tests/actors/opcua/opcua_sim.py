"""The OPC UA simulation server as a child process, and polling helpers for the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from fieldwatch.actors.opcua.session import OpcuaSession, SessionError

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimProcess:
    """`python -m fieldwatch.sim.opcua_server` as a child process on a fixed port."""

    def __init__(self, *args: str, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.args = list(args)
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []

    def start(self, timeout_s: float = 20.0) -> str:
        """Start the server and wait for its READY line; return the endpoint URL."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "fieldwatch.sim.opcua_server", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        ready = threading.Event()
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self._lines.append(line.rstrip())
                if line.startswith("READY "):
                    self.url = line.split(" ", 1)[1].strip()
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("sim server did not start:\n" + "\n".join(self._lines))
        return self.url

    @property
    def running(self) -> bool:
        """Whether the child process is alive (frozen counts as alive)."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM: it closes its sockets)."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server (SIGKILL), thawing it first if frozen."""
        if self.running and self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self._signal_and_wait(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP: the process stops answering but its sockets stay open."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: resume a frozen server."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def _signal_and_wait(self, signum: int) -> None:
        if not self.running or self.proc is None:
            return
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=5)


def done(future: Future[_T], timeout_s: float = 10.0) -> _T:
    """The result of a session request (`OpcuaSession.*_nowait`, as the actor uses them).

    The session bounds every request by its own timeout_s on the loop, so the future
    resolves (with the result or a SessionError) well before `timeout_s` here.
    """
    return future.result(timeout=timeout_s)


def close(session: OpcuaSession) -> None:
    """Close `session` and wait for it; a failed close (the link is gone) is fine."""
    with contextlib.suppress(SessionError):
        done(session.close_nowait())
