"""Test helper: a private Mosquitto broker on a free loopback port.

Each broker gets its own config, persistence directory and log in a work
directory, so a test can kill it (SIGKILL), freeze it (SIGSTOP/SIGCONT) and
restart it on the same port with its persistence kept.  Never touches the
system broker on 1883.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.waiting import wait_for

__all__ = [
    "MosquittoBroker",
    "free_port",
    "mosquitto_binary",
    "wait_for_port",
    "write_password_file",
]


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable (PATH, else Debian's /usr/sbin), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    """Poll until something accepts TCP connections on port; TimeoutError after timeout_s."""
    errors: list[OSError] = []

    def accepts() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError as err:
            errors.append(err)
            return False

    try:
        wait_for(accepts, timeout_s, 0.02, what=f"something to listen on {host}:{port}")
    except AssertionError as err:
        raise TimeoutError(f"{err} ({errors[-1] if errors else None})") from None


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """Write a Mosquitto password file (hashed with mosquitto_passwd) for users."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise RuntimeError("mosquitto_passwd is not installed")
    path.write_text("")
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)
    return path


@dataclass
class MosquittoBroker:
    """One private Mosquitto process; start() writes its config and waits for the port.

    max_queued_messages 0 means unlimited; max_inflight_messages 0 means unlimited.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    password_file: Path | None = None
    max_queued_messages: int = 0
    max_inflight_messages: int = 0
    persistence: bool = True
    autosave_interval_s: int = 1800
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        """The generated mosquitto.conf."""
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """Where the broker's stderr/stdout go."""
        return self.workdir / "mosquitto.log"

    @property
    def pid(self) -> int:
        """The running broker's process id."""
        if self.proc is None:
            raise RuntimeError("broker not started")
        return self.proc.pid

    def write_config(self) -> Path:
        """Write mosquitto.conf for this broker (idempotent)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.password_file else 'true'}",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_inflight_messages {self.max_inflight_messages}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {data}/",
            f"autosave_interval {self.autosave_interval_s}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # do not drop to `mosquitto`: the tmp dir is ours
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.extra_config:
            lines.append(self.extra_config.strip())
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def start(self, timeout_s: float = 10.0) -> MosquittoBroker:
        """Start the broker (persistence kept from an earlier run) and wait for its port."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("broker already running")
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.write_config()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                wait_for_port(self.port, timeout_s=0.2)
                return self
            except TimeoutError:
                continue
        self.kill()
        raise TimeoutError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the broker and reap it (no persistence save)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process must die too
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (Mosquitto saves its persistence), SIGKILL after timeout_s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self, timeout_s: float = 10.0) -> MosquittoBroker:
        """Start again on the same port with the same persistence directory."""
        return self.start(timeout_s=timeout_s)

    def freeze(self) -> None:
        """SIGSTOP: the socket stays open but nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        os.kill(self.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        """True while the process exists (frozen counts as running)."""
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, text: str, timeout_s: float = 10.0, count: int = 1) -> None:
        """Poll the broker log until text appears count times (needs connection_messages)."""

        def seen() -> bool:
            try:
                return self.log_path.read_text(errors="replace").count(text) >= count
            except OSError:
                return False

        try:
            wait_for(seen, timeout_s, 0.02, what=f"{text!r} in the log")
        except AssertionError as err:
            raise TimeoutError(f"{err}: {self.log_tail()}") from None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the broker's log (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
