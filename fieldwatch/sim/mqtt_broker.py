"""An MQTT broker for the demo: Mosquitto when installed, else an embedded amqtt broker.

Mosquitto runs as a child process with a generated config (loopback listener,
persistence in the work directory, queue limits raised as the no-loss
guarantee needs).  amqtt runs in a daemon thread with its own event loop; it
keeps sessions in memory only, which is enough for a demo.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldwatch.errors import FieldwatchError

__all__ = ["BrokerHandle", "BrokerStartError", "find_mosquitto", "mosquitto_config", "start_broker"]

logger = logging.getLogger(__name__)


class BrokerStartError(FieldwatchError):
    """The demo broker could not be started."""


@dataclass
class BrokerHandle:
    """A running broker; stop() ends it (idempotent)."""

    kind: str  # "mosquitto" or "amqtt"
    host: str
    port: int
    _stop: Callable[[], None] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the broker and wait for it (bounded)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop()


def find_mosquitto() -> str | None:
    """The mosquitto executable on PATH (scripts/demo.sh adds Debian's /usr/sbin), or None."""
    return shutil.which("mosquitto")


def mosquitto_config(port: int, workdir: Path, host: str = "127.0.0.1") -> str:
    """A mosquitto.conf for fieldwatch: persistence on, unlimited queue, a wide in-flight window."""
    data = workdir / "mosquitto-data"
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data}/",
        "autosave_interval 60",
        "max_queued_messages 1000000",  # default 1000: a persistent session would drop the rest
        "max_inflight_messages 1000",  # default 20 caps a manual-ack subscriber (v3.1.1) at 20 unacked
        f"log_dest file {workdir / 'mosquitto.log'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("user root")  # do not switch to `mosquitto`, who cannot write workdir
    return "\n".join(lines) + "\n"


def start_broker(
    port: int,
    workdir: Path | str,
    *,
    use_mosquitto: bool | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 10.0,
) -> BrokerHandle:
    """Start a broker on host:port and wait until it accepts connections.

    use_mosquitto: None picks Mosquitto when installed, else amqtt; True requires it.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    binary = find_mosquitto() if use_mosquitto is not False else None
    if binary is not None:
        return _start_mosquitto(binary, port, workdir, host, timeout_s)
    if use_mosquitto:
        raise BrokerStartError("mosquitto is not installed")
    return _start_amqtt(port, host, timeout_s)


def _wait_port(host: str, port: int, deadline: float, alive: Callable[[], bool]) -> bool:
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _start_mosquitto(binary: str, port: int, workdir: Path, host: str, timeout_s: float) -> BrokerHandle:
    (workdir / "mosquitto-data").mkdir(exist_ok=True)
    config = workdir / "mosquitto.conf"
    config.write_text(mosquitto_config(port, workdir, host))
    with (workdir / "mosquitto.stderr").open("ab") as err:
        proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    if not _wait_port(host, port, time.monotonic() + timeout_s, lambda: proc.poll() is None):
        _terminate(proc)
        raise BrokerStartError(
            f"mosquitto did not start on {host}:{port} (exit code {proc.returncode}); see {workdir / 'mosquitto.log'}"
        )
    logger.info("mosquitto %s listening on %s:%d (pid %d)", binary, host, port, proc.pid)
    return BrokerHandle("mosquitto", host, port, lambda: _terminate(proc))


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # mosquitto saves its persistence on SIGTERM
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _start_amqtt(port: int, host: str, timeout_s: float) -> BrokerHandle:
    from amqtt.broker import Broker  # imported here: only the fallback needs it

    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: list[Broker] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            broker = Broker(config, loop=loop)
            holder.append(broker)
            loop.run_until_complete(broker.start())
        except Exception as err:  # noqa: BLE001 - reported to the starting thread
            failure.append(err)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name=f"amqtt-{port}", daemon=True)
    thread.start()
    if not ready.wait(timeout_s) or failure:
        raise BrokerStartError(
            f"embedded amqtt broker did not start on {host}:{port}: {failure[0] if failure else 'timeout'}"
        )
    if not _wait_port(host, port, time.monotonic() + timeout_s, thread.is_alive):
        raise BrokerStartError(f"embedded amqtt broker does not accept connections on {host}:{port}")

    def stop() -> None:
        if holder and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(holder[0].shutdown(), loop)
            try:
                future.result(timeout=5)
            except Exception:  # noqa: BLE001 - shutting down anyway; log and stop the loop
                logger.warning("amqtt broker shutdown failed", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    logger.info("embedded amqtt broker listening on %s:%d", host, port)
    return BrokerHandle("amqtt", host, port, stop)
