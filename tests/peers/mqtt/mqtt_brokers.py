"""MQTT brokers nobody on this project wrote, each started on free loopback ports in a temp dir.

`NatsBroker` (nats-server's MQTT gateway, JetStream in the temp dir), `AedesBroker`
(aedes from npm, through `aedes_broker.mjs`) and `RabbitBroker` (RabbitMQ's MQTT
plugin on its own Erlang node `fw<random>@localhost`, never the system's node) share
`start()` / `stop()` / `port` / `version` / `name`. Mosquitto is `tests/mosquitto.py`.
`start()` raises `BrokerUnavailable` with the reason when the broker cannot run here.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.mosquitto import free_port, wait_for_port

__all__ = ["AedesBroker", "BrokerUnavailable", "NatsBroker", "RabbitBroker", "node_modules"]

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


class BrokerUnavailable(RuntimeError):
    """The broker is not installed or did not start in time; the message says why."""


def node_modules() -> Path | None:
    """FIELDWATCH_NODE_MODULES, else <repo>/.node/node_modules, if it exists."""
    path = Path(os.environ.get("FIELDWATCH_NODE_MODULES") or ROOT / ".node" / "node_modules")
    return path if path.is_dir() else None


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class _Process:
    """A broker process with its log in workdir."""

    name = "?"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None, timeout_s: float = 15.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                         env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerUnavailable(f"{self.name} exited with {self.proc.returncode}: {self.log_tail(600)}")
            try:
                wait_for_port(self.port, timeout_s=0.2)
                return
            except TimeoutError:
                continue
        self.stop()
        raise BrokerUnavailable(f"{self.name} did not listen on {self.port} within {timeout_s} s: {self.log_tail(600)}")

    def stop(self) -> None:
        _stop_process(self.proc)


class NatsBroker(_Process):
    """nats-server with its MQTT gateway and JetStream (sessions and QoS 1 need it)."""

    name = "nats-server"
    binary = "/usr/sbin/nats-server"
    #: NATS redelivers an unacknowledged message only after its ack wait (default 30 s), also to a
    #: session that reconnected at once; 5 s keeps the kill -9 test short.
    ack_wait_s = 5
    note = f"mqtt ack_wait {ack_wait_s} s (default 30 s)"

    def start(self) -> NatsBroker:
        binary = shutil.which("nats-server") or (self.binary if os.access(self.binary, os.X_OK) else None)
        if binary is None:
            raise BrokerUnavailable("nats-server is not installed (scripts/test.sh installs Debian's nats-server)")
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        self.version = out.strip().split()[-1].lstrip("v") if out.strip() else "?"
        config = self.workdir / "nats.conf"
        config.write_text(
            f"server_name: fw_{secrets.token_hex(3)}\n"
            f"listen: 127.0.0.1:{free_port()}\n"
            f"jetstream {{ store_dir: \"{self.workdir / 'js'}\" }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.port}, ack_wait: \"{self.ack_wait_s}s\" }}\n"
        )
        self._spawn([binary, "-c", str(config)])
        return self


class AedesBroker(_Process):
    """aedes 1.x (npm) on a plain TCP server: `node aedes_broker.mjs PORT` (in-memory persistence)."""

    name = "aedes"

    def start(self) -> AedesBroker:
        node = shutil.which("node")
        modules = node_modules()
        if node is None or modules is None or not (modules / "aedes").is_dir():
            raise BrokerUnavailable(f"node or aedes missing (node: {node}, node_modules: {modules}); "
                                    "scripts/test.sh installs them")
        self.version = _package_version(modules / "aedes" / "package.json")
        self._spawn([node, str(HERE / "aedes_broker.mjs"), str(self.port), str(modules / "aedes" / "aedes.js")])
        return self


def _package_version(package_json: Path) -> str:
    found = re.search(r'"version"\s*:\s*"([^"]+)"', package_json.read_text())
    return found.group(1) if found else "?"


class RabbitBroker(_Process):
    """RabbitMQ with its MQTT plugin on a node of its own (name, ports, data, cookie: all in workdir)."""

    name = "rabbitmq"
    sbin = Path("/usr/lib/rabbitmq/bin")
    start_timeout_s = 60.0

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.node = f"fw{secrets.token_hex(4)}@localhost"

    def _env(self) -> dict[str, str]:
        w = self.workdir
        return dict(
            os.environ,
            HOME=str(w),  # the Erlang cookie lives here, not in the machine's home
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self._amqp_port),
            RABBITMQ_DIST_PORT=str(self._dist_port),
            RABBITMQ_MNESIA_BASE=str(w / "mnesia"),
            RABBITMQ_LOG_BASE=str(w / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(w / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(w / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(w / "rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(w / "advanced.config"),
            RABBITMQ_PID_FILE=str(w / "rabbit.pid"),
        )

    def start(self) -> RabbitBroker:
        server = self.sbin / "rabbitmq-server"
        if not os.access(server, os.X_OK):
            raise BrokerUnavailable("rabbitmq-server is not installed (scripts/test.sh installs Debian's)")
        w = self.workdir
        self._amqp_port, self._dist_port = free_port(), free_port()
        (w / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (w / "rabbitmq-env.conf").write_text("")
        (w / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self._amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
        )
        found = re.search(r"rabbitmq_server-([\d.]+)", os.path.realpath(server))
        self.version = found.group(1) if found else "?"
        self._spawn([str(server)], env=self._env(), timeout_s=self.start_timeout_s)
        return self

    def stop(self) -> None:
        """rabbitmqctl -n NODE stop (this node only), then make sure the process is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            subprocess.run([str(self.sbin / "rabbitmqctl"), "-n", self.node, "stop"], env=self._env(),
                           capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        _stop_process(self.proc, timeout_s=15)
