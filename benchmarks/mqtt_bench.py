"""MQTT receive-rate benchmark: raw paho-mqtt against a private local Mosquitto.

Two ways of feeding the subscriber, N QoS 1 messages each
(`sensors/dev<k>/m<j>`, JSON `{"seq": i, "value": x, "ts": t}`):

* live: a publisher in another process sends N messages while the
  subscriber is connected; the rate is bounded by the publisher too.
* backlog: the subscriber's persistent session is offline while the
  publisher queues N messages in the broker; then the subscriber connects and
  drains the queue: the receiver's own limit.

The rate is (received - 1) / (last arrival - first arrival).  Every case
checks that each sequence number arrived.  Usage:

    .venv/bin/python benchmarks/mqtt_bench.py --messages 50000 --record
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.mosquitto import MosquittoBroker  # noqa: E402 - path set above

TOPIC_FILTER = "sensors/#"
_BACKLOG_NOTE = (
    "In *backlog* mode (the receiver alone) ingest beats raw paho although it also parses, hashes the identity, inserts into SQLite (unique index on msg_key) and acks after the commit: fieldwatch's client reads the socket in 64 KiB chunks, handles every buffered packet before it selects again, and wakes paho's loop once per burst of acks (`_BufferedClient` in fieldwatch/actors/mqtt/client.py), where plain paho makes three or more `recv` calls per packet and one wake-up `send` per ack. Each of those system calls lets go of the GIL, and with the actor and writer threads busy, getting it back is what cost the earlier version half its rate (48 % of raw on 2026-11-23 12:27, 55 % in a same-machine rerun before the change). The wrapper row shows the reader alone at about twice raw paho; ingest runs at about 60 % of the wrapper. The broker's in-flight window does not matter on loopback (same rate with 20, 100, 1000 and unlimited), the commit round trip being 1-2 ms."
)


@dataclass(frozen=True)
class Result:
    """One measured case."""

    case: str
    mode: str
    qos: int
    messages: int
    received: int
    unique: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second between the first and the last arrival."""
        return (self.received - 1) / self.seconds if self.seconds > 0 else 0.0


# --- publisher (child process) -------------------------------------------------------------------


def publish_main(port: int, messages: int, qos: int) -> None:
    """Publish `messages` numbered messages as fast as the broker accepts them, then exit."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] >= messages:
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    if messages <= 0:
        done.set()
    now = time.time()
    for i in range(messages):
        payload = json.dumps({"seq": i, "value": i * 0.5, "ts": now})
        client.publish(f"sensors/dev{i % 10}/m{i % 3}", payload, qos=qos)
    if qos == 0:
        done.set()
    done.wait(600)
    client.disconnect()
    client.loop_stop()


def start_publisher(port: int, messages: int, qos: int) -> subprocess.Popen[bytes]:
    """The publisher as a separate Python process."""
    return subprocess.Popen([sys.executable, __file__, "--publish", "--port", str(port),
                             "--messages", str(messages), "--qos", str(qos)])


# --- raw paho subscriber -------------------------------------------------------------------------


class RawCounter:
    """Counts arrivals and distinct sequence numbers; `done` is set at the expected count."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.first = 0.0
        self.last = 0.0
        self.count = 0
        self.seqs: set[int] = set()
        self.done = threading.Event()

    def on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.last = now
        self.count += 1
        self.seqs.add(json.loads(message.payload)["seq"])
        if len(self.seqs) >= self.expected:
            self.done.set()


def raw_paho(port: int, messages: int, qos: int, mode: str, timeout_s: float) -> Result:
    """paho-mqtt alone: parse the JSON to get the sequence number, auto-ack (paho's default)."""
    counter = RawCounter(messages)
    client_id = f"bench-raw-{mode}-{qos}"
    subscribed = threading.Event()

    def connect() -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        client.on_message = counter.on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        return client

    client = connect()
    client.subscribe(TOPIC_FILTER, qos=qos)
    if not subscribed.wait(10):
        raise RuntimeError("no SUBACK")
    if mode == "backlog":
        client.disconnect()
        client.loop_stop()
        run_publisher(port, messages, qos, timeout_s)
        client = connect()
        counter.done.wait(timeout_s)
    else:
        publisher = start_publisher(port, messages, qos)
        counter.done.wait(timeout_s)
        publisher.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return Result("raw paho-mqtt", mode, qos, messages, counter.count, len(counter.seqs),
                  counter.last - counter.first)


def wrapper_client(port: int, messages: int, qos: int, mode: str, timeout_s: float) -> Result:
    """fieldwatch's MqttClient (manual ack, keepalive watchdog), acking in the callback: wrapper overhead."""
    from fieldwatch.actors.mqtt.client import MqttClient

    counter = RawCounter(messages)
    connected = threading.Event()
    subscribed = threading.Event()
    holder: list[MqttClient] = []

    def on_message(topic: str, payload: bytes, q: int, mid: int, dup: bool) -> None:
        now = time.perf_counter()
        if counter.count == 0:
            counter.first = now
        counter.last = now
        counter.count += 1
        counter.seqs.add(json.loads(payload)["seq"])
        holder[0].ack(mid, q)
        if len(counter.seqs) >= messages:
            counter.done.set()

    def connect() -> MqttClient:
        connected.clear()
        client = MqttClient(host="127.0.0.1", port=port, client_id=f"bench-wrapper-{mode}-{qos}",
                            clean_session=False, username=None, password=None, tls=None, keepalive_s=60,
                            on_connect=lambda code, reason: connected.set(),
                            on_disconnect=lambda code, reason: None, on_message=on_message,
                            on_subscribed=lambda topics: subscribed.set())
        holder[:] = [client]
        client.subscribe([TOPIC_FILTER], qos)
        client.start()
        if not connected.wait(10) or not subscribed.wait(10):
            raise RuntimeError("no CONNACK or SUBACK")
        return client

    client = connect()
    if mode == "backlog":
        client.stop()
        run_publisher(port, messages, qos, timeout_s)
        client = connect()
        counter.done.wait(timeout_s)
    else:
        publisher = start_publisher(port, messages, qos)
        counter.done.wait(timeout_s)
        publisher.wait(timeout_s)
    client.stop()
    return Result("MqttClient wrapper", mode, qos, messages, counter.count, len(counter.seqs),
                  counter.last - counter.first)


def fieldwatch_ingest(port: int, messages: int, qos: int, mode: str, timeout_s: float) -> Result:
    """A whole in-process fieldwatch daemon (MqttActor, SQLite via the persistence actor).

    The rate counts messages whose readings are committed (the `stored` counter, which
    moves in the commit callback that also acks the message), polled every 5 ms.
    """
    from fieldwatch.actors.mqtt.schema import MqttOptions, ParserConfig
    from fieldwatch.config.model import Config, EndpointConfig, HttpConfig, LoggingConfig, SiteConfig, StorageConfig
    from fieldwatch.daemon import Daemon
    from fieldwatch.policy import DEFAULT_POLICY

    tmp = Path(tempfile.mkdtemp(prefix="fw-mqtt-ingest-"))
    options = MqttOptions(host="127.0.0.1", port=port, client_id=f"bench-fw-{mode}-{qos}", keepalive_s=60, qos=qos,
                          topics=(TOPIC_FILTER,),
                          parsers=(ParserConfig(match="sensors/+device/+metric", value="$.value",
                                                timestamp="$.ts"),),
                          offline_after_s=300.0)
    config = Config(instance="bench", storage=StorageConfig(url=f"sqlite:///{tmp / 'fw.db'}"),
                    http=HttpConfig(listen="127.0.0.1:0"),
                    logging=LoggingConfig(file=str(tmp / "fw.log"), level="warning"),
                    supervision=DEFAULT_POLICY,
                    sites=(SiteConfig("bench", endpoints=(EndpointConfig("mq", "mqtt", options),)),))

    def start() -> Daemon:
        daemon = Daemon(config, console_log=False, install_signals=False, http=False)
        daemon.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = daemon.ledger.find("bench", "mq")
            if status is not None and status.state == "up":
                return daemon
            time.sleep(0.01)
        raise RuntimeError("fieldwatch endpoint not up")

    def stored(daemon: Daemon) -> float:
        status = daemon.ledger.find("bench", "mq")
        return status.counters.get(("mqtt_messages", "stored"), 0.0) if status else 0.0

    daemon = start()
    # the subscription is active once a probe message is stored
    probe = paho.Client(CallbackAPIVersion.VERSION2)
    probe.connect("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while stored(daemon) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("no probe stored")
        probe.publish("sensors/probe/x", json.dumps({"value": 0, "ts": time.time()}), qos=1)
        probe.loop(0.1)
    probe.disconnect()
    time.sleep(0.3)  # late probes
    publisher: subprocess.Popen[bytes] | None = None
    if mode == "backlog":
        daemon.stop()
        run_publisher(port, messages, qos, timeout_s)
        daemon = start()
        base = 0.0
    else:
        base = stored(daemon)
        publisher = start_publisher(port, messages, qos)
    first = last = 0.0
    deadline = time.monotonic() + timeout_s
    count = 0.0
    while time.monotonic() < deadline:
        count = stored(daemon) - base
        now = time.perf_counter()
        if count >= 1 and not first:
            first = now
        if count >= messages:
            last = now
            break
        time.sleep(0.02)
    if publisher is not None:
        publisher.wait(timeout_s)
    daemon.stop()
    with sqlite3.connect(str(tmp / "fw.db")) as conn:
        rows, unique = conn.execute("SELECT count(*), count(DISTINCT value_num) FROM reading "
                                    "WHERE name LIKE 'm%'").fetchone()
    return Result("fieldwatch ingest", mode, qos, messages, int(rows), int(unique), (last or first) - first)


def run_publisher(port: int, messages: int, qos: int, timeout_s: float) -> None:
    """Run the publisher process to completion."""
    publisher = start_publisher(port, messages, qos)
    if publisher.wait(timeout_s) != 0:
        raise RuntimeError("publisher failed")


# --- running and recording -----------------------------------------------------------------------

Case = Callable[[int, int, int, str, float], Result]
CASES: dict[str, Case] = {"raw": raw_paho, "wrapper": wrapper_client, "fieldwatch": fieldwatch_ingest}


def run_case(name: str, messages: int, qos: int, mode: str, inflight: int, timeout_s: float) -> Result:
    """One case on a fresh broker (unlimited queue, in-flight window `inflight`)."""
    with tempfile.TemporaryDirectory(prefix="fw-mqtt-bench-") as tmp:
        broker = MosquittoBroker(Path(tmp), max_queued_messages=0, max_inflight_messages=inflight,
                                 persistence=False)
        broker.start()
        try:
            return CASES[name](broker.port, messages, qos, mode, timeout_s)
        finally:
            broker.kill()


def mosquitto_version() -> str:
    """`mosquitto -h` first line, e.g. `mosquitto version 2.0.11`."""
    from tests.mosquitto import mosquitto_binary

    binary = mosquitto_binary() or "mosquitto"
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "mosquitto (unknown version)"


def table(results: list[Result]) -> str:
    """A Markdown table: per case/feed/QoS the median rate over the repeats, every run's rate,
    and fieldwatch's median as a share of raw paho's in the same run."""
    groups: dict[tuple[str, str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.case, r.mode, r.qos), []).append(r)
    medians = {key: statistics.median(r.rate for r in runs) for key, runs in groups.items()}
    lines = ["| case | feed | QoS | messages | stored/received (unique), every run | msg/s median | runs msg/s "
             "| vs raw |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for (case, mode, qos), runs in groups.items():
        raw = medians.get(("raw paho-mqtt", mode, qos))
        share = f"{medians[(case, mode, qos)] / raw:.0%}" if raw and case != "raw paho-mqtt" else ""
        counts = ", ".join(sorted({f"{r.received:,} ({r.unique:,})" for r in runs}))
        lines.append(f"| {case} | {mode} | {qos} | {runs[0].messages:,} | {counts} "
                     f"| {medians[(case, mode, qos)]:,.0f} | {' / '.join(f'{r.rate:,.0f}' for r in runs)} "
                     f"| {share} |")
    return "\n".join(lines)


def record(section: str, path: Path = ROOT / "benchmarks" / "RESULTS.md") -> None:
    """Replace (or append) the `## MQTT` section of RESULTS.md, leaving the others alone."""
    text = path.read_text() if path.exists() else ""
    start = text.find("\n## MQTT\n")
    if start < 0 and text.startswith("## MQTT\n"):
        start = 0
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start].rstrip("\n") + "\n\n" + section + ("\n" + text[end:] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    """Parse arguments; run the publisher (child) or the benchmark cases."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--qos", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--modes", nargs="+", default=["live", "backlog"], choices=["live", "backlog"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--inflight", type=int, default=1000, help="broker max_inflight_messages")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every case (interleaved)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--record", action="store_true", help="write the ## MQTT section of RESULTS.md")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        publish_main(args.port, args.messages, args.qos[0])
        return
    results = []
    for _ in range(args.repeat):  # cases interleaved, so a busy spell of the machine hits all of them
        for qos in args.qos:
            for mode in args.modes:
                if mode == "backlog" and qos == 0:
                    continue  # Mosquitto does not queue QoS 0 for offline sessions
                for name in args.cases:
                    result = run_case(name, args.messages, qos, mode, args.inflight, args.timeout)
                    print(f"{result.case:>18} {mode:>8} qos{qos}: {result.rate:9,.0f} msg/s "
                          f"({result.unique:,}/{result.messages:,} unique)", flush=True)
                    results.append(result)
    body = table(results)
    print(body)
    if args.record:
        command = "`.venv/bin/python benchmarks/mqtt_bench.py " + " ".join(sys.argv[1:]) + "`"
        section = (
            "## MQTT\n\n"
            f"Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, "
            f"{mosquitto_version()}, paho-mqtt {metadata.version('paho-mqtt')}, "
            f"Python {platform.python_version()}; broker `max_inflight_messages {args.inflight}`, "
            "`max_queued_messages 0` (unlimited), publisher in its own process (QoS as listed, "
            "1,000 in flight).\n\n"
            f"Command: {command}\n\n{body}\n\n"
            f"Load average at the end: {os.getloadavg()[0]:.1f} (the machine is shared: single runs vary "
            "by +-30 %, hence the repeats). *live* is bounded by the Python publisher; *backlog* (the persistent session's "
            "queue drained on connect) is the receiver's own limit. The wrapper acks each message from "
            "its callback (manual ack) and notes inbound bytes in its chunked reader for the "
            "keepalive watchdog. *fieldwatch ingest* is a whole daemon in-process (MqttActor, parsers "
            "json with value and timestamp paths, SQLite through the persistence actor, ack after "
            "commit); its received/unique columns are the rows in the database afterwards.\n\n"
            f"{_BACKLOG_NOTE}\n"
        )
        record(section)


if __name__ == "__main__":
    main()
