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

import psycopg2
from daemon_proc import TOKEN
from .env import PG_DSN, SoakEnv
from .publisher import SeqPublisher, publish_raw

__all__ = ["FaultLog", "FaultRecord", "HttpCheck", "Injectors", "SiteWindow", "request"]

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
    disabled_at: float
    enabled_at: float | None = None


@dataclass(frozen=True)
class HttpCheck:
    """One bad request and what came back (status 0: no answer, see `error`)."""

    method: str
    path: str
    what: str
    status: int
    error: str = ""

    @property
    def ok(self) -> bool:
        """A 4xx, as the SPEC requires for bad input."""
        return 400 <= self.status < 500


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


def request(port: int, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
            headers: dict[str, str] | None = None, timeout_s: float = 20.0) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection; (status, body). Raises when there is no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Injectors:
    """The faults; each method blocks for the fault's duration and returns its record."""

    def __init__(self, env: SoakEnv, publisher: SeqPublisher | None, log: FaultLog, say: Callable[[str], None]) -> None:
        self.env, self.publisher, self.log, self.say = env, publisher, log, say
        self._added = 0

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
        hold = hold_s if hold_s is not None else rng.uniform(1.0, 6.0)
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
        hold = rng.uniform(2.0, 12.0)
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
        hold = rng.uniform(2.0, 8.0)
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
        hold = hold_s if hold_s is not None else rng.uniform(1.0, 6.0)
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
        hold = hold_s if hold_s is not None else rng.uniform(2.0, 8.0)
        ns.set_link(False)
        rec = self.log.add(FaultRecord("link_flap" if hold_s is None else "link_down_long", name, lane, time.time(),
                                       peer=name, detail={"hold_s": round(hold, 1)}))
        time.sleep(hold)  # the fault
        rec.end = time.time()
        ns.set_link(True)
        return rec

    # -- storage -----------------------------------------------------------------------

    def db_lock(self, rng: random.Random) -> FaultRecord:
        """Hold an exclusive lock on the SQLite file from another process for 2-5 s."""
        hold = rng.uniform(2.0, 5.0)
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
            with psycopg2.connect(PG_DSN) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (self.env.pg_database,))
                row = cur.fetchone()
                killed += int(row[0]) if row else 0
            conn.close()
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
        hold = rng.uniform(1.0, 4.0)
        window = SiteWindow(site, time.time())
        with self.log.lock:
            self.log.site_windows.append(window)
        rec = self.log.add(FaultRecord("site_toggle", site, "main", window.disabled_at, detail={"hold_s": round(hold, 1)}))
        status, body = request(self.port, "POST", f"/api/v1/sites/{site}/disable")
        if status != 202:
            rec.problems.append(f"disable answered {status}: {body[:300]!r}")
        else:
            states = {ep["state"] for ep in json.loads(body)["endpoints"]}
            if states != {"disabled"}:
                rec.problems.append(f"disable answered 202 but the endpoints are {sorted(states)}")
        time.sleep(hold)  # the fault: the site is off this long
        status, body = request(self.port, "POST", f"/api/v1/sites/{site}/enable")
        window.enabled_at = rec.end = time.time()
        if status != 202:
            rec.problems.append(f"enable answered {status}: {body[:300]!r}")
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
        cases = _bad_requests(rng)
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


def _bad_requests(rng: random.Random) -> list[tuple[str, str, bytes | None, str | None, str]]:
    """(method, path, body, token, what) of bad requests, some with random parts."""
    junk = "".join(rng.choice("abcxyz0189-_.~%") for _ in range(rng.randint(1, 40)))
    huge = json.dumps({"name": "huge", "endpoints": [], "pad": "x" * (2 << 20)}).encode()
    return [
        ("POST", "/api/v1/sites", b"{not json", TOKEN, "invalid JSON"),
        ("POST", "/api/v1/sites", b'{"name": "x", "bogus": 1}', TOKEN, "unknown field"),
        ("POST", "/api/v1/sites", b"[1, 2]", TOKEN, "JSON array body"),
        ("POST", "/api/v1/sites", huge, TOKEN, "2 MB body"),
        ("POST", "/api/v1/sites", json.dumps({"name": "bad", "endpoints": [
            {"name": "e", "kind": "icmp", "host": "127.0.0.1", "interval_s": -1}]}).encode(), TOKEN, "invalid endpoint"),
        ("POST", "/api/v1/sites", json.dumps({"name": "bad2", "endpoints": [
            {"name": "e", "kind": "warp-drive"}]}).encode(), TOKEN, "unknown kind"),
        ("PUT", "/api/v1/sites/net", b'{"name": "other"}', TOKEN, "name differs from path"),
        ("GET", "/api/v1/events?limit=abc", None, None, "limit not a number"),
        ("GET", "/api/v1/events?limit=100001", None, None, "limit too large"),
        ("GET", "/api/v1/readings?since=yesterday-ish", None, None, "bad since"),
        ("GET", "/api/v1/alerts?active=maybe", None, None, "bad boolean"),
        ("GET", f"/api/v1/sites?{junk}=1", None, None, "unknown parameter"),
        ("GET", "/api/v1/readings?cursor=" + junk, None, None, "bad cursor"),
        ("GET", "/api/v1/logs?lines=-5", None, None, "negative lines"),
        ("GET", "/api/v1/events?level=loud", None, None, "bad level"),
        ("POST", "/api/v1/sites/net/disable", None, "wrong-token", "wrong token"),
        ("POST", "/api/v1/sites/net/disable", None, None, "no token"),
        ("DELETE", "/api/v1/sites/plant1", None, "wrong-token", "wrong token on delete"),
        ("GET", f"/api/v1/{junk}", None, None, "random path"),
        ("GET", f"/{junk}/{junk}", None, None, "random path"),
        ("GET", "/api/v1/sites/%ff%fe", None, None, "non-UTF-8 path"),
        ("DELETE", f"/api/v1/sites/nope-{junk}", None, TOKEN, "delete unknown site"),
        ("POST", f"/api/v1/endpoints/net/nope-{junk}/restart", None, TOKEN, "restart unknown endpoint"),
        ("POST", "/api/v1/topics/enable", b"{}", TOKEN, "topic switch without fields"),
        ("PATCH", "/api/v1/sites", b"{}", TOKEN, "method not allowed"),
    ]
