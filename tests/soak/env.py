"""The soak's world: peers (OPC UA sims, a Mosquitto, namespace hosts), the daemon process and its config.

`SoakEnv` owns every process and namespace it starts and tears all of them down
in `close()`, whatever happened. It also keeps the daemon's incarnations (one per
process start) and the detection bound of every monitored endpoint, computed
from the very config it writes.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import psycopg2

from tests.actors.opcua.opcua_sim import SimProcess
from tests.e2e.daemon_proc import DaemonProc
from tests.mosquitto import MosquittoBroker, mosquitto_binary
from tests.netns import VethNamespace, netns_available, veth_namespace

__all__ = ["Incarnation", "PG_DSN", "SoakEnv", "Target", "mqtt_available", "pg_admin"]

#: The PostgreSQL server of this machine (trust auth); the soak creates its own database on it.
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"

# Endpoint timing written into the daemon's config; the detection bounds derive from them.
ICMP = {"interval_s": 1.0, "timeout_s": 0.5, "down_after": 2}
OPCUA_TIMEOUT_S = 2.0
OPCUA_STALE_S = 5.0
HEALTH = {"interval_s": 1.0, "timeout_s": 2.0, "failures": 2}
MQTT_KEEPALIVE_S = 4
LINK_NET = ipaddress.IPv4Network("169.254.77.0/24")

SUPERVISION_YAML = f"""\
defaults:
  backoff: {{initial_s: 0.5, max_s: 2, multiplier: 2, jitter: 0.1, reset_after_s: 30}}
  health_check: {{interval_s: {HEALTH["interval_s"]:g}, timeout_s: {HEALTH["timeout_s"]:g}, failures: {HEALTH["failures"]:g}}}
kinds:
  icmp: {{health_check: {{interval_s: 2}}}}
  opcua: {{backoff: {{max_s: 2}}}}
"""


def mqtt_available() -> bool:
    """Whether the MQTT endpoint actor exists in this tree (it is built by another engineer)."""
    return find_spec("fieldwatch.actors.mqtt.actor") is not None


@dataclass(frozen=True)
class Target:
    """One monitored endpoint: who it watches and how fast a dead peer must show."""

    site: str
    endpoint: str
    kind: str
    peer: str  # "opcua1", "broker", "ns1", "loopback", ...
    bound_s: float  # detection bound of a peer that stops answering (frozen, link down)
    bound_gone_s: float  # detection bound of a peer that is gone (killed: connection refused/reset)
    match: tuple[str, ...] = ()  # strings that attribute a log line to this endpoint

    @property
    def key(self) -> tuple[str, str]:
        """(site, endpoint)."""
        return (self.site, self.endpoint)

    @property
    def path(self) -> str:
        """The actor path its log lines carry."""
        return f"sites/{self.site}/{self.endpoint}"


@dataclass
class Incarnation:
    """One daemon process: when it was started, ready, killed, and how it ended."""

    index: int
    pid: int
    spawned_at: float
    ready_at: float | None = None
    killed_at: float | None = None  # when the test sent SIGKILL
    stopped_at: float | None = None  # when the test sent SIGTERM (final stop)
    exit_code: int | None = None
    exited_at: float | None = None


@dataclass
class SoakEnv:
    """Starts and stops every peer and the daemon; the single owner of their processes."""

    workdir: Path
    backend: str = "sqlite"
    with_mqtt: bool = True
    log: Any = print
    daemon: DaemonProc | None = None
    broker: MosquittoBroker | None = None
    sims: dict[str, SimProcess] = field(default_factory=dict)
    namespaces: dict[str, VethNamespace] = field(default_factory=dict)
    targets: dict[tuple[str, str], Target] = field(default_factory=dict)
    incarnations: list[Incarnation] = field(default_factory=list)
    netns_reason: str = ""
    db_url: str = ""
    pg_database: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    _stack: ExitStack = field(default_factory=ExitStack)

    # -- set-up --------------------------------------------------------------------

    def start(self) -> None:
        """Start the peers, write the config, start the daemon and wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        starters = [threading.Thread(target=self._start_sim, args=(name,)) for name in ("opcua1", "opcua2")]
        for thread in starters:
            thread.start()
        if self.with_mqtt:
            if mosquitto_binary() is None:
                raise RuntimeError("mosquitto is not installed")
            self.broker = MosquittoBroker(
                self.workdir / "broker",
                max_queued_messages=0,
                max_inflight_messages=0,
                autosave_interval_s=1,
                # Save after every stored message, so a SIGKILLed broker loses nothing it acknowledged
                # before the publisher's quiesce marker (see faults.broker_kill).
                extra_config="autosave_on_changes true\nmessage_size_limit 0",
            ).start()
        ok, reason = netns_available()
        if ok:
            for name, block in zip(("ns1", "ns2"), self._free_blocks(2), strict=True):
                hosts = list(block.hosts())
                self.namespaces[name] = self._stack.enter_context(
                    veth_namespace(f"{hosts[0]}/30", f"{hosts[1]}/30")
                )
        else:
            self.netns_reason = reason
            self.log(f"soak: namespace ICMP targets skipped: {reason}")
        for thread in starters:
            thread.join(60)
        missing = [n for n in ("opcua1", "opcua2") if n not in self.sims]
        if missing:
            raise RuntimeError(f"OPC UA sim servers did not start: {missing}")
        self.db_url = self._database_url()
        self.daemon = DaemonProc(str(self.workdir), self._config_yaml())
        (self.workdir / "supervision.yaml").write_text(SUPERVISION_YAML)
        self.start_daemon()

    def _start_sim(self, name: str) -> None:
        sim = SimProcess()
        sim.start()
        self.sims[name] = sim

    def _free_blocks(self, count: int) -> list[ipaddress.IPv4Network]:
        """`count` /30 blocks of 169.254.77.0/24 that no route or address of this host overlaps."""
        text = ""
        for argv in (["ip", "-4", "route", "show", "table", "all"], ["ip", "-4", "addr"]):
            text += subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
        used = [ipaddress.ip_network(m, strict=False) for m in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?", text)]
        used = [net for net in used if net.prefixlen > 16]  # a default, /8 or /16 route is no claim on the block
        blocks = list(LINK_NET.subnets(new_prefix=30))
        start = (os.getpid() * 7) % len(blocks)
        free: list[ipaddress.IPv4Network] = []
        for i in range(len(blocks)):
            block = blocks[(start + i) % len(blocks)]
            if not any(block.overlaps(net) for net in used):
                free.append(block)
            if len(free) == count:
                return free
        raise RuntimeError("no free /30 left in 169.254.77.0/24")

    def _database_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / 'fieldwatch.db'}"
        self.pg_database = f"soak_{os.getpid()}_{int(time.time())}"
        pg_admin(f"CREATE DATABASE {self.pg_database}")
        return PG_DSN.rsplit("/", 1)[0] + "/" + self.pg_database

    def _config_yaml(self) -> str:
        """The daemon's fieldwatch.yaml; registers every Target with its detection bound."""
        hc = HEALTH
        opcua_bound = hc["interval_s"] + max(OPCUA_TIMEOUT_S, hc["timeout_s"]) + 1.0
        icmp_bound = ICMP["interval_s"] * ICMP["down_after"] + ICMP["timeout_s"] + 1.0
        lines = [
            "instance: soak",
            f"storage: {{url: '{self.db_url}'}}",
            "http: {listen: '127.0.0.1:@PORT@', token: '${FIELDWATCH_TOKEN}'}",
            "logging: {file: '@DIR@/fieldwatch.log', level: info, format: json, max_bytes: 1073741824}",
            "supervision: '@DIR@/supervision.yaml'",
            "sites:",
        ]
        for i, name in enumerate(("opcua1", "opcua2"), start=1):
            sim = self.sims[name]
            site = f"plant{i}"
            lines += [
                f"  - name: {site}",
                "    endpoints:",
                "      - name: plc",
                "        kind: opcua",
                f"        url: '{sim.url}'",
                f"        timeout_s: {OPCUA_TIMEOUT_S:g}",
                f"        stale_after_s: {OPCUA_STALE_S:g}",
                "        nodes:",
                "          - {id: 'ns=2;s=Counter', name: counter, poll_s: 1}",
                "          - {id: 'ns=2;s=Tank1.Level', name: level, poll_s: 1}",
                "          - {id: 'ns=2;s=Pump1.Running', name: pump1, mode: subscribe, poll_s: 1}",
            ]
            port = urllib.parse.urlsplit(sim.url).port
            self._add(Target(site, "plc", "opcua", name, opcua_bound, opcua_bound, (f":{port}",)))
        if self.broker is not None:
            lines += [
                "  - name: iot",
                "    endpoints:",
                "      - name: broker",
                "        kind: mqtt",
                "        host: 127.0.0.1",
                f"        port: {self.broker.port}",
                "        client_id: fieldwatch-soak",
                f"        keepalive_s: {MQTT_KEEPALIVE_S}",
                "        qos: 1",
                "        topics: ['soak/#']",
                "        parsers:",
                "          - {match: 'soak/+device/+metric', format: json, value: '$.value', timestamp: '$.ts'}",
                "        offline_after_s: 120",
            ]
            self._add(Target("iot", "broker", "mqtt", "broker", 1.5 * MQTT_KEEPALIVE_S + 1.0, 1.0,
                             (f":{self.broker.port}",)))
        icmp = "interval_s: {interval_s:g}, timeout_s: {timeout_s:g}, down_after: {down_after}".format(**ICMP)
        lines += ["  - name: net", "    endpoints:", f"      - {{name: loopback, kind: icmp, host: 127.0.0.1, {icmp}}}"]
        self._add(Target("net", "loopback", "icmp", "loopback", icmp_bound, icmp_bound, ("127.0.0.1",)))
        for name, ns in self.namespaces.items():
            lines.append(f"      - {{name: far{name[-1]}, kind: icmp, host: {ns.peer_address}, {icmp}}}")
            self._add(Target("net", f"far{name[-1]}", "icmp", name, icmp_bound, icmp_bound, (ns.peer_address,)))
        return "\n".join(lines) + "\n"

    def _add(self, target: Target) -> None:
        self.targets[target.key] = target

    # -- the daemon ----------------------------------------------------------------

    @property
    def current(self) -> Incarnation | None:
        """The newest incarnation (alive or not)."""
        with self.lock:
            return self.incarnations[-1] if self.incarnations else None

    def start_daemon(self, timeout_s: float = 60.0) -> Incarnation:
        """Start a new daemon process and wait until /readyz answers 200."""
        assert self.daemon is not None
        with self.lock:
            self.daemon.start(wait_ready=False)
            assert self.daemon.proc is not None
            inc = Incarnation(len(self.incarnations), self.daemon.proc.pid, time.time())
            self.incarnations.append(inc)
        self.daemon.wait(lambda: self.daemon is not None and self.daemon.status_of("/readyz") == 200,
                         timeout_s, "the daemon to be ready")
        inc.ready_at = time.time()
        exercise_api(self.daemon.port)
        return inc

    def kill_daemon(self) -> int:
        """SIGKILL the daemon and reap it; its exit code (expected -9)."""
        assert self.daemon is not None and self.daemon.proc is not None
        with self.lock:
            inc = self.incarnations[-1]
            inc.killed_at = time.time()
            self.daemon.proc.send_signal(signal.SIGKILL)
        code = self.daemon.proc.wait(15)
        inc.exit_code, inc.exited_at = code, time.time()
        return code

    def stop_daemon(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the daemon (the final, clean stop) and wait for its exit code."""
        if self.daemon is None or self.daemon.proc is None:
            return None
        inc = self.incarnations[-1]
        if self.daemon.proc.poll() is None:
            inc.stopped_at = time.time()
            self.daemon.proc.send_signal(signal.SIGTERM)
            try:
                self.daemon.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.daemon.proc.kill()
                self.daemon.proc.wait(10)
        if inc.exit_code is None:
            inc.exit_code, inc.exited_at = self.daemon.proc.returncode, time.time()
        return inc.exit_code

    def daemon_alive(self) -> bool:
        """Whether the current daemon process runs."""
        return self.daemon is not None and self.daemon.proc is not None and self.daemon.proc.poll() is None

    # -- tear-down -----------------------------------------------------------------

    def close(self) -> None:
        """Stop everything this env started (daemon, sims, broker, namespaces, PG database)."""
        if self.daemon is not None and self.daemon_alive():
            self.stop_daemon(15)
        for sim in self.sims.values():
            sim.kill()
        if self.broker is not None:
            self.broker.kill()
        self._stack.close()
        if self.pg_database:
            try:
                pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (self.pg_database,))
                pg_admin(f"DROP DATABASE IF EXISTS {self.pg_database}")
            except psycopg2.Error as err:
                self.log(f"soak: could not drop {self.pg_database}: {err}")


def pg_admin(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """One autocommit statement on the soak's PostgreSQL server (CREATE/DROP DATABASE need autocommit)."""
    conn = psycopg2.connect(PG_DSN, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def exercise_api(port: int) -> None:
    """Part of every incarnation's warm-up: read-side routes from 16 concurrent clients, so each HTTP
    thread opens its own database connection before the resource baseline (per-thread connections,
    created lazily and kept, are not a leak)."""
    paths = ["/api/v1/events?limit=5", "/api/v1/readings?limit=5", "/api/v1/alerts", "/api/v1/endpoints/net/loopback",
             "/api/v1/topics", "/api/v1/tree", "/readyz", "/api/v1/sites/net"]

    def get(path: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # a warm-up request that fails warms nothing: the baseline shows it
        finally:
            conn.close()

    for _ in range(3):
        threads = [threading.Thread(target=get, args=(paths[i % len(paths)],)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
