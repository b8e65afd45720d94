"""Peer servers for the OPC UA peer tests (node-opcua, python-opcua) as child processes.

Each server runs on a free port on 127.0.0.1 with its files in a temp dir and
prints ``READY <url> <version>`` once serving; `PeerProcess` waits for that line.
`make_client_cert` (tests/opcua_certs.py) is re-exported for the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.opcua_certs import make_client_cert
from tests.waiting import wait_for

__all__ = [
    "PeerProcess",
    "free_port",
    "make_client_cert",
    "node_modules",
    "node_opcua_server",
    "python_opcua_server",
    "trust_rejected",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def node_modules() -> Path | None:
    """The folder holding node-opcua (FIELDWATCH_NODE_MODULES, else <repo>/.node/node_modules), if usable."""
    folder = Path(os.environ.get("FIELDWATCH_NODE_MODULES") or REPO / ".node" / "node_modules")
    if shutil.which("node") is None or not (folder / "node-opcua" / "package.json").is_file():
        return None
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PeerProcess:
    """A server child process that prints ``READY <url> <version>``; killed by `kill()`."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.cmd, self.env, self.cwd = cmd, env, cwd
        self.pki = Path(env.get("PKI", cwd / "pki"))  # node-opcua's PKI folder
        self.url = ""
        self.version = ""
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self, timeout_s: float = 60.0) -> PeerProcess:
        """Start and wait for the READY line (node-opcua makes its own certificate on first start)."""
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.cwd, env={**os.environ, **self.env}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        ready = threading.Event()
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line.rstrip())
                if line.startswith("READY "):
                    _ready, self.url, self.version = line.split()[:3]
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("peer server did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    @property
    def running(self) -> bool:
        """Whether the process is alive (a frozen one counts)."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Send a signal (SIGSTOP freezes it with its sockets open, SIGKILL ends it at once)."""
        assert self.proc is not None
        self.proc.send_signal(signum)
        if signum == signal.SIGKILL:
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        """End the server for good (thawing it first if frozen)."""
        if self.running and self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=5)


def node_opcua_server(
    tmp: Path, modules: Path, *, security: str = "None", accept: bool = True,
    user: str | None = None, password: str | None = None, port: int | None = None,
) -> PeerProcess:
    """A node-opcua server (tests/peers/opcua/node_opcua_server.js); its PKI folder is ``tmp/pki``."""
    env = {
        "NODE_OPCUA_MODULES": str(modules), "PORT": str(port or free_port()), "PKI": str(tmp / "pki"),
        "SECURITY": security, "ACCEPT": "1" if accept else "0",
    }
    if user is not None:
        env.update(USER_NAME=user, USER_PASSWORD=password or "")
    return PeerProcess(["node", str(HERE / "node_opcua_server.js")], env, tmp).start()


def python_opcua_server(tmp: Path, port: int | None = None) -> PeerProcess:
    """A python-opcua (`opcua` 0.98) server (tests/peers/opcua/python_opcua_server.py)."""
    cmd = [sys.executable, str(HERE / "python_opcua_server.py"), str(port or free_port())]
    return PeerProcess(cmd, {"PYTHONUNBUFFERED": "1"}, tmp).start()


def trust_rejected(pki: Path, timeout_s: float = 10.0) -> list[Path]:
    """Move every certificate from node-opcua's PKI ``rejected/`` to ``trusted/certs/`` (what an operator does)."""
    rejected = wait_for(lambda: sorted((pki / "rejected").glob("*")), timeout_s, 0.05, what=f"a certificate in {pki / 'rejected'}")
    moved = []
    for cert in rejected:
        target = pki / "trusted" / "certs" / cert.name
        cert.rename(target)
        moved.append(target)
    return moved
