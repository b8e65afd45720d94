"""Failover of real daemons (SPEC section 10): fault -> first fresh reading on the new owner.

Three `fieldwatch run` processes (tests/cluster/daemon_cluster.py) share six ICMP sites
(127.0.0.1, 1 s interval) in a fresh schema of the PostgreSQL named by FIELDWATCH_TEST_PG.
Per trial: wait until every site runs on exactly one instance, fault the owner of most
sites (SIGKILL, or SIGSTOP), and measure for each of its sites the time from the fault
until another instance owns it, runs it and shows a reading taken after the fault
(`last_data_at`); the trial's figure is its slowest site. A killed instance is started
again and a frozen one woken (SIGCONT) before the next trial; a woken one must claim
none of its old sites and run none of their actors. A sampler polls every instance's
`GET /api/v1/cluster` throughout, and no site may ever be claimed twice.

Then `--commands` pairs: disable, then enable a site through an instance that does not
own it, each timed from sending the request until the owner's tree shows the change.

    FIELDWATCH_TEST_PG=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/ha_failover.py --kill 10 --freeze 10 --commands 20 --ttl 5

Fencing: per trial, the readings of the faulted owner's sites taken before the fault are
counted once the sites run elsewhere and again at the end of the trial (after a frozen owner
woke and emptied its queue): any difference is a write committed from a stale epoch
(`stale_rows`, must be 0); a woken owner's fieldwatch_storage_fenced_writes_total is summed
(`fenced_writes`). With `--mqtt`, a site `m` with one MQTT endpoint (QoS 1, a persistent
session, `id_field`) on a private Mosquitto broker runs along, created through the API, while
a publisher sends numbered messages at `--mqtt-rate` per second through every trial; at the
end: numbers sent, stored, lost and duplicate rows; every fault then hits the owner of `m` (and
its first fresh reading on the new owner counts like an ICMP site's).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from fieldwatch.cluster.placement import preferred_owner

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # the repo root: tests.* helpers

from tests.cluster.cluster_helpers import assert_never_owned_twice  # noqa: E402
from tests.cluster.daemon_cluster import SITES, HttpSampler, Instance, storage_url  # noqa: E402


def _wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, AssertionError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)  # polling period


ALL_SITES: tuple[str, ...] = SITES  # with --mqtt: SITES + ("m",)


def _live(instances: list[Instance]) -> list[Instance]:
    return [i for i in instances if not i.frozen and i.proc is not None and i.proc.poll() is None]


def _settled(instances: list[Instance]) -> dict[str, Instance] | None:
    owners: dict[str, Instance] = {}
    for inst in _live(instances):
        owned, running = set(inst.owned()), inst.running()
        if owned != running or owners.keys() & owned:
            return None
        owners.update(dict.fromkeys(owned, inst))
    if set(owners) != set(ALL_SITES):
        return None
    live = [i.name for i in _live(instances)]
    return owners if all(owners[site].name == preferred_owner(site, live) for site in ALL_SITES) else None


def _fresh_on_survivor(survivors: list[Instance], site: str, fault_wall: float) -> bool:
    for inst in survivors:
        if site in inst.owned() and site in inst.running():
            seen = inst.endpoint(site, "mq" if site == "m" else "lo").get("last_data_at")
            if seen and datetime.fromisoformat(seen.replace("Z", "+00:00")).timestamp() > fault_wall:
                return True
    return False


def _metric(inst: Instance, name: str) -> float | None:
    for line in inst.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _readings_before(cur: Any, sites: list[str], wall: float) -> int:
    """Readings of `sites` taken at or before `wall` (epoch seconds) stored now."""
    cur.execute(
        "SELECT count(*) FROM reading_raw r JOIN series x ON x.id = r.series_id JOIN endpoint e ON e.id = x.endpoint_id "
        "JOIN site s ON s.id = e.site_id WHERE s.name = ANY(%s) AND r.t <= %s",
        (sites, int(wall * 1000)),
    )
    return int(cur.fetchone()[0])


def fault_trial(instances: list[Instance], sig: int, ttl: float, cur: Any = None) -> dict[str, Any]:
    """One fault; the slowest site's fault -> fresh reading time, and the woken owner's claims."""
    if not _wait(lambda: _settled(instances), 8 * ttl, 0.2):
        return {"error": "placement did not settle"}
    victim = max(_live(instances), key=lambda i: ("m" in i.owned(), len(i.owned())))  # --mqtt: m's owner
    lost_epochs = victim.owned()
    moved_sites = sorted(lost_epochs)
    lost = set(lost_epochs)
    fenced_before = _metric(victim, "fieldwatch_storage_fenced_writes_total") or 0.0
    survivors = [i for i in instances if i is not victim]
    fault_wall, fault = time.time(), time.monotonic()
    if sig == signal.SIGKILL:
        victim.kill()
    else:
        victim.frozen = True
        victim.signal(sig)
    times: dict[str, float] = {}

    def all_fresh() -> bool:
        for site in lost - set(times):
            if _fresh_on_survivor(survivors, site, fault_wall):
                times[site] = time.monotonic() - fault
        return len(times) == len(lost)

    done = _wait(all_fresh, ttl + 15, 0.05)
    result: dict[str, Any] = {"sites": len(lost), "slowest_s": max(times.values()) if done else None,
                              "moved": moved_sites}  # fmt: skip
    before = _readings_before(cur, moved_sites, fault_wall) if cur is not None and done else None
    if sig == signal.SIGKILL:
        victim.start(timeout=60)
    else:
        victim.signal(signal.SIGCONT)
        victim.frozen = False
        # Awake, it must never claim an epoch it lost (it may get sites back at newer epochs
        # when the others hand its rendezvous share back): sampled for two seconds.
        stale = set()
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            try:
                claims = victim.owned()
            except (OSError, AssertionError, ValueError):
                continue
            stale |= {site for site, epoch in claims.items() if lost_epochs.get(site) == epoch}
        result["stale_claims"] = len(stale)
        # the woken writer's queue: committed or fenced, then its fenced writes are counted
        _wait(lambda: _metric(victim, "fieldwatch_storage_queue_depth") == 0, 30, 0.1)
        result["fenced_writes"] = (_metric(victim, "fieldwatch_storage_fenced_writes_total") or 0.0) - fenced_before
    if before is not None:
        result["stale_rows"] = _readings_before(cur, moved_sites, fault_wall) - before
    return result


def command_trial(instances: list[Instance], site: str) -> list[float]:
    """Disable, then enable `site` through a non-owner: for each, seconds from sending the
    request until the owner's tree shows the change (stops, then runs the site again)."""
    owners = _wait(lambda: _settled(instances), 30, 0.2)
    if not owners:
        return []
    owner = owners[site]
    other = next(i for i in _live(instances) if i is not owner)
    out = []
    for action, runs in (("disable", False), ("enable", True)):
        sent = time.monotonic()
        status, _ = other.request("POST", f"/api/v1/sites/{site}/{action}")
        if status != 202 or not _wait(lambda runs=runs: (site in owner.running()) == runs, 5, 0.005):
            views = {i.name: i.get(f"/api/v1/sites/{site}")["enabled"] for i in _live(instances)}
            print(f"command {action} {site} via {other.name} not applied by {owner.name} within 5 s "
                  f"(HTTP {status}; enabled as each instance sees it: {views})", file=sys.stderr, flush=True)  # fmt: skip
            owner.request("POST", f"/api/v1/sites/{site}/enable")  # leave it enabled for the next trials
            return out
        out.append(time.monotonic() - sent)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1], "n": len(ordered)}


class MqttLoad:
    """A private Mosquitto broker, the site `m` (created through the API) and a publisher of
    numbered QoS 1 messages; `report()` counts what the cluster stored."""

    def __init__(self, workdir: str, rate: float) -> None:
        from tests.mosquitto import MosquittoBroker

        self.broker = MosquittoBroker(Path(workdir) / "broker").start()
        self.rate = rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, name="mqtt-publisher", daemon=True)

    def create_site(self, via: Instance, client_id: str) -> None:
        body = {"name": "m", "endpoints": [{
            "name": "mq", "kind": "mqtt", "host": "127.0.0.1", "port": self.broker.port, "client_id": client_id,
            "keepalive_s": 5, "qos": 1, "topics": ["load/#"], "offline_after_s": 300,
            "parsers": [{"match": "load/+device/+metric", "format": "json", "value": "$.seq", "id_field": "seq"}],
        }]}  # fmt: skip
        status, answer = via.request("POST", "/api/v1/sites", body)
        if status not in (200, 201):
            raise RuntimeError(f"creating the MQTT site failed: HTTP {status} {answer}")

    def start(self) -> None:
        self._thread.start()

    def _publish(self) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="ha-bench-publisher")
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        infos = []
        start = time.monotonic()
        while not self._stop.is_set():
            infos.append(client.publish(f"load/dev{self.sent % 3}/seq", json.dumps({"seq": self.sent}), qos=1))
            self.sent += 1
            self._stop.wait(max(0.0, start + self.sent / self.rate - time.monotonic()))  # pacing
        for info in infos:
            info.wait_for_publish(60)
        client.disconnect()
        client.loop_stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=90)

    def report(self, cur: Any) -> dict[str, Any]:
        """Wait (at most 90 s) until every number sent is stored; lost and duplicate rows."""

        def counts() -> tuple[int, int]:
            cur.execute("SELECT count(*), count(DISTINCT value_num) FROM reading WHERE name = 'seq'")
            rows, distinct = cur.fetchone()
            return int(rows), int(distinct)

        _wait(lambda: counts()[1] >= self.sent, 90, 0.5)
        rows, distinct = counts()
        cur.execute(
            "SELECT count(*) FROM generate_series(0, %s - 1) n WHERE NOT EXISTS "
            "(SELECT 1 FROM reading WHERE name = 'seq' AND value_num = n)",
            (self.sent,),
        )
        lost = int(cur.fetchone()[0])
        return {"sent": self.sent, "stored": distinct, "lost": lost, "duplicate_rows": rows - distinct}

    def close(self) -> None:
        self.broker.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill", type=int, default=10, help="SIGKILL trials")
    parser.add_argument("--freeze", type=int, default=10, help="SIGSTOP trials")
    parser.add_argument("--commands", type=int, default=20, help="command-through-a-non-owner trials")
    parser.add_argument("--ttl", type=float, default=5.0, help="cluster.lease_ttl_s (>= 5)")
    parser.add_argument("--mqtt", action="store_true", help="an MQTT site with numbered QoS 1 messages")
    parser.add_argument("--mqtt-rate", type=float, default=50.0, help="messages per second")
    args = parser.parse_args()
    global ALL_SITES
    dsn = os.environ.get("FIELDWATCH_TEST_PG")
    if not dsn:
        print("FIELDWATCH_TEST_PG is not set", file=sys.stderr)
        return 2
    schema = f"fw_ha_fail_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE SCHEMA {schema}")
    workdir = tempfile.mkdtemp(prefix="ha-failover-")
    url = storage_url(dsn, schema)
    instances: list[Instance] = []
    out: dict[str, Any] = {"ttl": args.ttl, "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    conn = psycopg2.connect(dsn, options=f"-csearch_path={schema}", application_name=f"bench-{schema}")
    conn.autocommit = True
    cur = conn.cursor()
    mqtt: MqttLoad | None = None
    try:
        instances.append(Instance(os.path.join(workdir, "a"), "a", url, args.ttl).start(timeout=60))
        for name in ("b", "c"):
            instances.append(Instance(os.path.join(workdir, name), name, url, args.ttl).start(timeout=60))
        if args.mqtt:
            mqtt = MqttLoad(workdir, args.mqtt_rate)
            mqtt.create_site(instances[0], f"fw-bench-{schema}")
            ALL_SITES = (*SITES, "m")
            if not _wait(lambda: _settled(instances), 60, 0.2):
                raise RuntimeError("the MQTT site did not start")
            mqtt.start()
        with HttpSampler(instances, interval=0.2) as sampler:
            for label, sig, n in (("kill", signal.SIGKILL, args.kill), ("freeze", signal.SIGSTOP, args.freeze)):
                trials = [fault_trial(instances, sig, args.ttl, cur) for _ in range(n)]
                ok = [t["slowest_s"] for t in trials if t.get("slowest_s") is not None]
                out[label] = {
                    "trials": n,
                    "failed": n - len(ok),
                    **(_stats(ok) if ok else {}),
                    "stale_claims": sum(t.get("stale_claims", 0) for t in trials),
                    "stale_rows": sum(t.get("stale_rows", 0) for t in trials),
                    "stale_rows_checked": sum("stale_rows" in t for t in trials),
                    "fenced_writes": sum(t.get("fenced_writes", 0) for t in trials),
                    "mqtt_site_moved": sum("m" in t.get("moved", ()) for t in trials),
                }
                print(label, json.dumps(out[label]), flush=True)
            if mqtt is not None:
                mqtt.stop()
                out["mqtt"] = mqtt.report(cur)
                print("mqtt", json.dumps(out["mqtt"]), flush=True)
            applied = [x for i in range(args.commands) for x in command_trial(instances, SITES[i % len(SITES)])]
            out["commands"] = {"trials": 2 * args.commands, "failed": 2 * args.commands - len(applied),
                               **(_stats(applied) if applied else {})}  # fmt: skip
            print("commands", json.dumps(out["commands"]), flush=True)
        out["owned_twice_check"] = f"passed over {assert_never_owned_twice(sampler.samples)} (site, epoch) ownerships"
    finally:
        if mqtt is not None:
            mqtt.stop()
            mqtt.close()
        conn.close()
        for inst in instances:
            if inst.frozen and inst.proc is not None:
                inst.proc.send_signal(signal.SIGCONT)
            inst.kill()
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE %s AND pid <> pg_backend_pid()", (f"%{schema}%",))  # fmt: skip
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    out["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
