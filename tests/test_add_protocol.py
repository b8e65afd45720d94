"""The worked example of docs/INTERNALS.md "Add a protocol": a whole kind defined in this file.

A TCP-connect check (`kind: tcp`) is an options dataclass, its schema, a ConnectionActor
and one `Kind` record. Registering it is one line (`KINDS.registered(TCP)`); no other
file of fieldwatch knows about it, yet it runs through config validation, the actor
tree, the status board, the metrics and the API of a real daemon, against a real
listening socket: `up` while the port accepts, `down` once it is closed.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from fieldwatch import states
from fieldwatch.actors.connection import ConnectionActor, Failure
from fieldwatch.actors.scheduler import TimerHandle
from fieldwatch.config import parse_config_text
from fieldwatch.daemon import Daemon
from fieldwatch.errors import ConfigError
from fieldwatch.families import counter_family
from fieldwatch.kinds import KINDS
from fieldwatch.protocol import DEFAULT_CONDITIONS, Kind
from fieldwatch.schema.dsl import Field, Float, Int, Obj, Str
from tests.waiting import wait_for

# -- the kind: everything a protocol folder would hold -----------------------------------


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """Connect to `host:port` every `interval_s`; a refused or timed-out connect is `down`."""

    host: str
    port: int
    interval_s: float = 10.0
    timeout_s: float = 1.0


SCHEMA = Obj(
    TcpOptions,
    {
        "host": Field(Str(pattern=r"^[^\s/]+$"), required=True),
        "port": Field(Int(ge=1, le=65535), required=True),
        "interval_s": Float(gt=0),
        "timeout_s": Float(gt=0),
    },
)


@dataclass(frozen=True, slots=True)
class Check:
    """Self-message: connect once now."""

    generation: int


class TcpActor(ConnectionActor):
    """One TCP endpoint: a connect per interval; `up` while they succeed."""

    kind: ClassVar[str] = "tcp"
    options: TcpOptions

    _timer: TimerHandle | None = None

    def connect(self) -> None:
        """Check once; on success go `up` and check every interval until a check fails."""
        if self._check():
            self.connected(f"{self._target()} accepts")
            self._timer = self.every(self.options.interval_s, Check(self.generation))

    def disconnect(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_message(self, message: Any) -> Any:
        if isinstance(message, Check):
            if message.generation == self.generation and self._timer is not None:
                self._check()
            return None
        return super().on_message(message)

    def stale_after_s(self) -> float:
        return 3 * self.options.interval_s + self.options.timeout_s

    def _check(self) -> bool:
        try:
            with socket.create_connection((self.options.host, self.options.port), self.options.timeout_s):
                pass
        except OSError as err:
            self.count("tcp_checks", "failed")
            self.disconnect()  # no more checks until the reconnect the backoff schedules
            self.retry_later(Failure(states.DOWN, f"{self._target()}: {err.strerror or err}"))  # -> DOWN, alert
            return False
        self.count("tcp_checks", "ok")
        self.data_received()
        return True

    def _target(self) -> str:
        return f"{self.options.host}:{self.options.port}"


TCP = Kind(
    name="tcp",
    options=TcpOptions,
    schema=SCHEMA,
    actor=lambda: TcpActor,
    metrics=(
        counter_family("fieldwatch_tcp_checks", "TCP connect checks, by outcome.", "tcp_checks", ("ok", "failed")),
    ),
    alert_conditions=DEFAULT_CONDITIONS,
    supervision={"backoff": {"initial_s": 0.2, "max_s": 0.5}},
)

# -- the test ------------------------------------------------------------------------------

TOKEN = "test-token"
CONFIG = """
instance: toy
storage: {{url: "sqlite:///{dir}/fieldwatch.db"}}
http: {{listen: "127.0.0.1:0", token: {token}}}
logging: {{file: "{dir}/fieldwatch.log", level: debug}}
sites:
  - name: lab
    endpoints:
      - name: door
        kind: tcp
        host: 127.0.0.1
        port: {port}
        interval_s: 0.2
        timeout_s: 0.5
"""


@pytest.fixture
def tcp_kind() -> Iterator[Kind]:
    with KINDS.registered(TCP) as kind:  # the one line that adds the protocol
        yield kind
    assert "tcp" not in KINDS  # nothing leaks into other tests


def _get(base: str, path: str) -> Any:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read().decode()
    return body if path == "/metrics" else json.loads(body)


def _door(base: str) -> dict[str, Any]:
    sites = _get(base, "/api/v1/sites")["items"]
    return next(e for s in sites if s["name"] == "lab" for e in s["endpoints"] if e["name"] == "door")


def _sample(metrics: str, name: str, extra: str = "") -> float | None:
    labels = 'endpoint="door",kind="tcp",site="lab"' + (f",{extra}" if extra else "")
    prefix = f"{name}{{{labels}}} "
    values = [float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)]
    assert len(values) <= 1, (name, extra)
    return values[0] if values else None


def test_an_unknown_kind_is_refused_until_registered(tmp_path: Any) -> None:
    text = CONFIG.format(dir=tmp_path, token=TOKEN, port=1)
    with pytest.raises(ConfigError) as err:
        parse_config_text(text, "fieldwatch.yaml")
    assert "sites[0].endpoints[0].kind" in str(err.value) and "tcp" in str(err.value)


def test_the_kind_validates_its_options(tmp_path: Any, tcp_kind: Kind) -> None:
    config = parse_config_text(CONFIG.format(dir=tmp_path, token=TOKEN, port=8502), "fieldwatch.yaml")
    endpoint = config.sites[0].endpoints[0]
    assert endpoint.kind == "tcp" and endpoint.options == TcpOptions("127.0.0.1", 8502, 0.2, 0.5)
    with pytest.raises(ConfigError) as err:
        parse_config_text(CONFIG.format(dir=tmp_path, token=TOKEN, port=70000), "fieldwatch.yaml")
    assert "fieldwatch.yaml:12: sites[0].endpoints[0].port: must be <= 65535, got 70000" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config_text(CONFIG.format(dir=tmp_path, token=TOKEN, port=8502) + "        url: x\n", "fieldwatch.yaml")
    assert "sites[0].endpoints[0].url: unknown key 'url'" in str(err.value)


def test_a_toy_kind_runs_through_config_actor_status_metrics_and_api(tmp_path: Any, tcp_kind: Kind) -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)  # the kernel completes the handshakes
    port = listener.getsockname()[1]
    config = parse_config_text(CONFIG.format(dir=tmp_path, token=TOKEN, port=port), os.path.join(tmp_path, "f.yaml"))
    assert config.supervision.for_endpoint("tcp").backoff.max_s == 0.5  # the kind's own supervision default
    daemon = Daemon(config, console_log=False, install_signals=False, http=True)
    daemon.start()
    try:
        base = daemon.url
        wait_for(lambda: _door(base)["state"] == "up", 10.0, what="door up")
        door = _door(base)
        assert door["kind"] == "tcp" and door["reason"] == f"127.0.0.1:{port} accepts"
        view = _get(base, "/api/v1/endpoints/lab/door")
        assert view["state"] == "up" and view["config"]["port"] == port

        wait_for(
            lambda: (_sample(_get(base, "/metrics"), "fieldwatch_tcp_checks_total", 'result="ok"') or 0) >= 2,
            10.0,
            what="two counted checks",
        )
        metrics = _get(base, "/metrics")
        assert _sample(metrics, "fieldwatch_endpoint_up") == 1.0
        assert _sample(metrics, "fieldwatch_endpoint_state", 'state="up"') == 1.0
        assert _sample(metrics, "fieldwatch_tcp_checks_total", 'result="failed"') == 0.0
        for condition in DEFAULT_CONDITIONS:
            assert _sample(metrics, "fieldwatch_alerts_active", f'condition="{condition}"') == 0.0
        assert "# TYPE fieldwatch_tcp_checks_total counter" in metrics

        listener.close()  # the negative: connects are refused now
        wait_for(lambda: _door(base)["state"] == "down", 10.0, what="door down")
        assert "127.0.0.1" in (_door(base)["reason"] or "")
        wait_for(
            lambda: _sample(_get(base, "/metrics"), "fieldwatch_alerts_active", 'condition="down"') == 1.0,
            10.0,
            what="the down alert in the metrics",
        )
        metrics = _get(base, "/metrics")
        assert _sample(metrics, "fieldwatch_endpoint_up") == 0.0
        assert (_sample(metrics, "fieldwatch_tcp_checks_total", 'result="failed"') or 0) >= 1
    finally:
        listener.close()
        daemon.stop()
