"""The fault injectors: each does one fault to the real world and records it with start/end times.

A `FaultRecord` with `peer` set made that peer unreachable from `start` (taken
once the fault is in effect) to `end` (taken just before it is undone), which
is what the detection invariants read. Injectors that talk to the daemon also
check what they see (a 4xx for bad input, commands taking effect) and put
what is wrong in `problems`.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .env import SoakEnv, pg_admin
from .httpbad import HttpCheck, bad_requests, request
from .publisher import SeqPublisher, publish_raw

__all__ = ["FaultLog", "FaultRecord", "Injectors", "SiteWindow"]

_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault: hold the lock this long
conn.execute("COMMIT")
print("released", flush=True)
"""


@dataclass
class FaultRecord:
    """One injected fault; `peer` (with `gone`: killed, not just silent) when it cut a peer off."""

    kind: str
    target: str
    lane: str
    start: float
    end: float | None = None
    peer: str | None = None
    gone: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class SiteWindow:
    """A site disabled by a command: from the disable request until the enable answered."""

    site: str
    disabled_at: float  # the disable request was sent
    disabled_ack: float | None = None  # ... and answered (202: actors stopped)
    enable_sent: float | None = None  # the enable request was sent
    enabled_at: float | None = None  # ... and answered (actors started)
    disable_status: int = 0  # the disable's HTTP status: only a 202 disabled the site


@dataclass
class FaultLog:
    """Everything the injectors did, shared by both lanes (guarded by a lock)."""

    faults: list[FaultRecord] = field(default_factory=list)
    site_windows: list[SiteWindow] = field(default_factory=list)
    added_sites: list[dict[str, Any]] = field(default_factory=list)
    http_checks: list[HttpCheck] = field(default_factory=list)
    malformed: list[tuple[str, int]] = field(default_factory=list)  # (what, bytes)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: FaultRecord) -> FaultRecord:
        """Append a record (its end may still be filled in later)."""
        with self.lock:
            self.faults.append(record)
        return record


class Injectors:
    """The faults; each method blocks for the fault's duration and returns its record."""

    def __init__(self, env: SoakEnv, publisher: SeqPublisher | None, log: FaultLog, say: Callable[[str], None]) -> None:
        self.env, self.publisher, self.log, self.say = env, publisher, log, say
        self._added = 0
        self.deadline = float("inf")  # the end of the fault phase: holds are cut short there

    def _hold(self, seconds: float) -> float:
        """A fault's hold time, cut to end with the fault phase (at least 1 s)."""
        return max(1.0, min(seconds, self.deadline - time.time()))

    @property
    def port(self) -> int:
        """The daemon's API port."""
        assert self.env.daemon is not None
        return self.env.daemon.port

    # -- peers -------------------------------------------------------------------------

    def broker_kill(self, rng: random.Random, lane: str = "main", hold_s: float | None = None) -> FaultRecord:
        """SIGKILL Mosquitto (after the publisher quiesced), keep it down, restart it on its persistence."""
        broker = self.env.broker
        assert broker is not None
        hold = hold_s if hold_s is not None else self._hold(rng.uniform(1.0, 6.0))
        rec = FaultRecord("broker_kill", "broker", lane, 0.0, peer="broker", gone=True, detail={"hold_s": round(hold, 1)})
        if self.publisher is not None and not self.publisher.quiesce(broker.workdir):
            rec.problems.append("publisher did not quiesce (PUBACKs or the broker's save did not come in 15 s)")
        broker.kill()
        rec.start = time.time()
        self.log.add(rec)
        time.sleep(hold)  # the fault: the broker is gone this long
        rec.end = time.time()
        broker.restart()
        if self.publisher is not None:
            self.publisher.resume()
        return rec

    def broker_freeze(self, rng: random.Random, lane: str = "main") -> FaultRecord:
        """SIGSTOP Mosquitto for 2-12 s (longer than the MQTT bound about half the time)."""
        broker = self.env.broker
        assert broker is not None
        hold = self._hold(rng.uniform(2.0, 12.0))
        broker.freeze()
        rec = self.log.add(FaultRecord("broker_freeze", "broker", lane, time.time(), peer="broker",
                                       detail={"hold_s": round(hold, 1)}))
        time.sleep(hold)  # the fault
        rec.end = time.time()
        broker.thaw()
        return rec

    def opcua_freeze(self, rng: random.Random, name: str, lane: str = "main") -> FaultRecord:
        """SIGSTOP one OPC UA sim server for 2-8 s."""
        sim = self.env.sims[name]
        hold = self._hold(rng.uniform(2.0, 8.0))
        sim.freeze()
        rec = self.log.add(FaultRecord("opcua_freeze", name, lane, time.time(), peer=name,
                                       detail={"hold_s": round(hold, 1)}))
        time.sleep(hold)  # the fault
        rec.end = time.time()
        sim.thaw()
        return rec

    def opcua_kill(self, rng: random.Random, name: str, lane: str = "main", hold_s: float | None = None) -> FaultRecord:
        """SIGKILL one OPC UA sim server, keep it down, start it again on the same port."""
        sim = self.env.sims[name]
        hold = hold_s if hold_s is not None else self._hold(rng.uniform(1.0, 6.0))
        sim.kill()
        rec = self.log.add(FaultRecord("opcua_kill", name, lane, time.time(), peer=name, gone=True,
                                       detail={"hold_s": round(hold, 1)}))
        time.sleep(hold)  # the fault
        rec.end = time.time()
        sim.start()
        return rec

    def link_flap(self, rng: random.Random, name: str, lane: str = "main", hold_s: float | None = None) -> FaultRecord:
        """Set a namespace's far veth end down for 2-8 s (the host there stops answering), then up."""
        ns = self.env.namespaces[name]
        hold = hold_s if hold_s is not None else self._hold(rng.uniform(2.0, 8.0))
        ns.set_link(False)
        rec = self.log.add(FaultRecord("link_flap" if hold_s is None else "link_down_long", name, lane, time.time(),
                                       peer=name, detail={"hold_s": round(hold, 1)}))
        time.sleep(hold)  # the fault
        rec.end = time.time()
        ns.set_link(True)
        return rec

    def outage_across_restart(self, rng: random.Random, peer: str) -> FaultRecord:
        """Cut a peer off until the daemon shows it down, SIGKILL the daemon, bring the peer back while
        the daemon is down, start the daemon: the alert of the outage must still get resolved."""
        rec = FaultRecord("outage_across_restart", peer, "main", 0.0, peer=peer)
        target = next(t for t in self.env.targets.values() if t.peer == peer)
        if peer == "broker":
            assert self.env.broker is not None
            if self.publisher is not None and not self.publisher.quiesce(self.env.broker.workdir):
                rec.problems.append("publisher did not quiesce")
            self.env.broker.kill()
            rec.gone = True
        elif peer.startswith("opcua"):
            self.env.sims[peer].kill()
            rec.gone = True
        else:
            self.env.namespaces[peer].set_link(False)
        rec.start = time.time()
        self.log.add(rec)
        deadline = time.monotonic() + target.bound_s + 5.0
        while time.monotonic() < deadline and not self._shows_down(target.site, target.endpoint):
            time.sleep(0.1)  # poll interval
        rec.detail["shown_down_after_s"] = round(time.time() - rec.start, 1)
        time.sleep(rng.uniform(0.5, 1.5))  # the fault: stay down a little longer, so the alert is committed
        code = self.env.kill_daemon()
        kill = self.log.add(FaultRecord("daemon_kill", "daemon", "main", time.time(), detail={"during": peer}))
        if code != -signal.SIGKILL:
            kill.problems.append(f"the killed daemon exited with {code}, not -9")
        rec.end = time.time()
        if peer == "broker":
            assert self.env.broker is not None
            self.env.broker.restart()
            if self.publisher is not None:
                self.publisher.resume()
        elif peer.startswith("opcua"):
            self.env.sims[peer].start()
        else:
            self.env.namespaces[peer].set_link(True)
        inc = self.env.start_daemon()
        kill.end = inc.ready_at
        return rec

    def _shows_down(self, site: str, endpoint: str) -> bool:
        try:
            status, raw = request(self.port, "GET", f"/api/v1/endpoints/{site}/{endpoint}", token=None, timeout_s=5)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200 and json.loads(raw)["state"] in ("down", "stale", "faulty")

    # -- storage -----------------------------------------------------------------------

    def db_lock(self, rng: random.Random) -> FaultRecord:
        """Hold an exclusive lock on the SQLite file from another process for 2-5 s."""
        hold = self._hold(rng.uniform(2.0, 5.0))
        path = self.env.db_url.removeprefix("sqlite:///")
        locker = subprocess.Popen([sys.executable, "-c", _LOCKER, path, str(hold)], stdout=subprocess.PIPE, text=True)
        rec = FaultRecord("db_lock", "sqlite", "main", time.time(), detail={"hold_s": round(hold, 1)})
        assert locker.stdout is not None
        if locker.stdout.readline().strip() != "locked":
            rec.problems.append("the locker could not take the lock")
        rec.start = time.time()
        self.log.add(rec)
        locker.stdout.readline()  # "released", after `hold` seconds
        rec.end = time.time()
        locker.wait(10)
        return rec

    def pg_terminate(self, rng: random.Random) -> FaultRecord:
        """pg_terminate_backend every connection of the daemon, 1-3 times 0.5 s apart."""
        times = rng.randint(1, 3)
        rec = self.log.add(FaultRecord("pg_terminate", "postgresql", "main", time.time(), detail={"rounds": times}))
        killed = 0
        for i in range(times):
            rows = pg_admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (self.env.pg_database,))
            killed += int(str(rows[0][0])) if rows else 0
            if i + 1 < times:
                time.sleep(0.5)  # the fault's rhythm
        rec.detail["backends"] = killed
        rec.end = time.time()
        return rec

    # -- the daemon --------------------------------------------------------------------

    def daemon_kill(self, rng: random.Random) -> FaultRecord:
        """SIGKILL the daemon, leave it down 0-2 s, start it again and wait until it is ready."""
        down = rng.uniform(0.0, 2.0)
        code = self.env.kill_daemon()
        rec = self.log.add(FaultRecord("daemon_kill", "daemon", "main", time.time(), detail={"down_s": round(down, 1)}))
        if code != -signal.SIGKILL:
            rec.problems.append(f"the killed daemon exited with {code}, not -9")
        time.sleep(down)  # the fault: no daemon
        inc = self.env.start_daemon()
        rec.end = inc.ready_at
        rec.detail["ready_after_s"] = round((inc.ready_at or 0) - inc.spawned_at, 1)
        return rec

    def site_toggle(self, rng: random.Random, site: str) -> FaultRecord:
        """Disable a site through the API, keep it disabled 1-4 s, enable it again."""
        hold = self._hold(rng.uniform(1.0, 4.0))
        window = SiteWindow(site, time.time())
        with self.log.lock:
            self.log.site_windows.append(window)
        rec = self.log.add(FaultRecord("site_toggle", site, "main", window.disabled_at, detail={"hold_s": round(hold, 1)}))
        status, body = request(self.port, "POST", f"/api/v1/sites/{site}/disable")
        window.disabled_ack, window.disable_status = time.time(), status
        if status != 202:
            rec.problems.append(f"disable answered {status}: {body[:300]!r}")
        else:
            states = {ep["state"] for ep in json.loads(body)["endpoints"]}
            if states != {"disabled"}:
                rec.problems.append(f"disable answered 202 but the endpoints are {sorted(states)}")
        time.sleep(hold)  # the fault: the site is off this long
        window.enable_sent = time.time()
        status, body = request(self.port, "POST", f"/api/v1/sites/{site}/enable")
        if status != 202:
            rec.problems.append(f"enable answered {status}: {body[:300]!r}")
            deadline = time.monotonic() + 60  # the harness must leave the site enabled: retry until it takes
            while status != 202 and time.monotonic() < deadline:
                time.sleep(1.0)  # retry interval
                status, body = request(self.port, "POST", f"/api/v1/sites/{site}/enable")
        window.enabled_at = rec.end = time.time()
        return rec

    def site_add_delete(self, rng: random.Random) -> FaultRecord:
        """Create a site (ICMP to 127.0.0.x) through the API, wait for it to be up, delete it."""
        self._added += 1
        name = f"soak-added-{self._added}"
        host = f"127.0.0.{rng.randint(2, 250)}"
        body = {"name": name, "endpoints": [{"name": "lo", "kind": "icmp", "host": host, "interval_s": 1, "timeout_s": 0.5}]}
        rec = self.log.add(FaultRecord("site_add_delete", name, "main", time.time(), detail={"host": host}))
        entry: dict[str, Any] = {"name": name, "created_at": None, "deleted_at": None, "up": False}
        with self.log.lock:
            self.log.added_sites.append(entry)
        status, raw = request(self.port, "POST", "/api/v1/sites", json.dumps(body).encode())
        if status != 201:
            rec.problems.append(f"create answered {status}: {raw[:300]!r}")
            rec.end = time.time()
            return rec
        entry["created_at"] = time.time()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not entry["up"]:
            status, raw = request(self.port, "GET", f"/api/v1/endpoints/{name}/lo", token=None)
            entry["up"] = status == 200 and json.loads(raw)["state"] == "up"
            if not entry["up"]:
                time.sleep(0.1)  # poll interval
        if not entry["up"]:
            rec.problems.append("the added site's endpoint was not up within 15 s")
        status, raw = request(self.port, "DELETE", f"/api/v1/sites/{name}")
        entry["deleted_at"] = time.time()
        if status != 204:
            rec.problems.append(f"delete answered {status}: {raw[:300]!r}")
        status, _ = request(self.port, "GET", f"/api/v1/sites/{name}", token=None)
        if status != 404:
            rec.problems.append(f"GET of the deleted site answered {status}, not 404")
        status, raw = request(self.port, "GET", "/api/v1/tree", token=None)
        if status == 200 and f"root/sites/{name}" in raw.decode(errors="replace"):
            rec.problems.append("the deleted site is still in /api/v1/tree")
        rec.end = time.time()
        return rec

    # -- bad input ---------------------------------------------------------------------

    def mqtt_malformed(self, rng: random.Random) -> FaultRecord:
        """Publish malformed payloads on a processed topic: bad JSON, 1 MB junk, non-UTF-8, no value."""
        broker = self.env.broker
        assert broker is not None
        choices = [
            ("bad json", b"{broken"),
            ("1 MB junk", rng.randbytes(1 << 20)),
            ("non-utf8", b"\xff\xfe\xfa\x80 not text"),
            ("json without value", b'{"other": 1}'),
            ("json value null", b'{"value": }'),
            ("empty", b""),
            ("json array", b"[1, 2, 3]"),
            ("NUL bytes", b'{"value": 1}\x00\x00 trailing NULs'),
        ]
        items = rng.sample(choices, rng.randint(2, len(choices)))
        rec = self.log.add(FaultRecord("mqtt_malformed", "broker", "main", time.time(),
                                       detail={"payloads": [what for what, _ in items]}))
        acked = publish_raw(broker.port, [("soak/junk/seq", payload) for _, payload in items])
        if acked != len(items):
            rec.problems.append(f"only {acked} of {len(items)} malformed payloads were acknowledged by the broker")
        with self.log.lock:
            self.log.malformed.extend((what, len(payload)) for what, payload in items)
        rec.end = time.time()
        return rec

    def http_bad(self, rng: random.Random) -> FaultRecord:
        """Send 6-12 bad requests; each must get a 4xx (never a 5xx, never a dropped connection)."""
        cases = bad_requests(rng)
        chosen = rng.sample(cases, rng.randint(6, 12))
        rec = self.log.add(FaultRecord("http_bad", "api", "main", time.time(), detail={"requests": len(chosen)}))
        for method, path, body, token, what in chosen:
            try:
                status, raw = request(self.port, method, path, body, token=token)
                check = HttpCheck(method, path[:120], what, status, "" if status < 500 else raw[:200].decode(errors="replace"))
            except (OSError, http.client.HTTPException) as err:
                check = HttpCheck(method, path[:120], what, 0, f"{type(err).__name__}: {err}")
            with self.log.lock:
                self.log.http_checks.append(check)
            if not check.ok:
                rec.problems.append(f"{what}: {method} {path[:80]} -> {check.status} {check.error}")
        rec.end = time.time()
        return rec
