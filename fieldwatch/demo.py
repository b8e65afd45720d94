"""`fieldwatch demo`: the daemon on embedded defaults, with its own simulated field.

Starts an OPC UA simulation server (tank level, pump, counter), an MQTT broker
(Mosquitto when installed, else the embedded amqtt broker) with a simulated
publisher of a few devices (one goes silent after a minute), and watches them
plus ICMP to 127.0.0.1 and one address that never answers. SQLite in a temp or
given folder. Prints the status page's URL first, then the API URL, the generated
token and some hints.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
import tempfile
from typing import Any

from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.actors.mqtt.schema import MqttOptions, ParserConfig
from fieldwatch.actors.opcua.schema import NodeConfig, OpcuaOptions, ThresholdConfig
from fieldwatch.config.model import Config, EndpointConfig, HttpConfig, LoggingConfig, SiteConfig, StorageConfig
from fieldwatch.policy import DEFAULT_POLICY

__all__ = ["add_demo", "cmd_demo", "demo_config", "SILENT_ADDRESS"]

logger = logging.getLogger(__name__)

#: An address that never answers and whose probes never leave this machine: a
#: link-local IPv6 address scoped to the loopback interface, assigned to nobody.
SILENT_ADDRESS = "fe80::dead:beef%lo"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def add_demo(sub: Any) -> None:
    """Declare `demo`."""
    p = sub.add_parser("demo", help="run the daemon on embedded defaults with a simulated field")
    p.add_argument("--dir", metavar="DIR", help="keep the database and log here (default: a temp folder)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="API address (default 127.0.0.1:8080; port 0 = any)")
    p.add_argument("--silent-after", type=float, default=60.0, help="seconds before one MQTT device goes silent")
    p.add_argument("--offline-after", type=float, default=30.0, help="MQTT offline_after_s of the demo endpoint")


def demo_config(
    workdir: str, *, listen: str, token: str, opcua_url: str, mqtt_port: int, offline_after_s: float
) -> Config:
    """The demo's configuration, built in code (the same shapes a YAML file gives)."""
    plant = SiteConfig(
        name="demo-plant",
        endpoints=(
            EndpointConfig(
                "plc",
                "opcua",
                OpcuaOptions(
                    url=opcua_url,
                    timeout_s=3.0,
                    stale_after_s=10.0,
                    nodes=(
                        NodeConfig("ns=2;s=Tank1.Level", "level", poll_s=1.0),
                        NodeConfig("ns=2;s=Pump1.Running", "pump", mode="subscribe"),
                        NodeConfig("ns=2;s=Counter", "counter", poll_s=2.0),
                    ),
                    thresholds=(ThresholdConfig("level", high=8.5, low=1.5, severity="warning"),),
                ),
            ),
            EndpointConfig(
                "sensors",
                "mqtt",
                MqttOptions(
                    host="127.0.0.1",
                    port=mqtt_port,
                    client_id="fieldwatch-demo",
                    keepalive_s=10,
                    qos=1,
                    topics=("sensors/#",),
                    parsers=(ParserConfig("sensors/+device/+metric", "json", value="$.value", timestamp="$.ts"),),
                    offline_after_s=offline_after_s,
                    clean_session=False,
                ),
            ),
        ),
    )
    network = SiteConfig(
        name="demo-network",
        endpoints=(
            EndpointConfig("loopback", "icmp", IcmpOptions("127.0.0.1", interval_s=2.0, timeout_s=1.0)),
            EndpointConfig("silent", "icmp", IcmpOptions(SILENT_ADDRESS, interval_s=2.0, timeout_s=1.0)),
        ),
    )
    return Config(
        instance="demo",
        storage=StorageConfig(url=f"sqlite:///{os.path.join(workdir, 'fieldwatch.db')}"),
        http=HttpConfig(listen=listen, token=token),
        logging=LoggingConfig(file=os.path.join(workdir, "fieldwatch.log"), level="info"),
        supervision=DEFAULT_POLICY,
        sites=(plant, network),
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the simulated field and the daemon; Ctrl-C stops everything."""
    from fieldwatch.runcmd import run_config
    from fieldwatch.sim.mqtt_broker import start_broker
    from fieldwatch.sim.mqtt_publisher import SimulatedPublisher
    from fieldwatch.sim.opcua_server import SimOptions, SimServerThread

    workdir = args.dir or tempfile.mkdtemp(prefix="fieldwatch-demo-")
    os.makedirs(workdir, exist_ok=True)
    token = os.environ.get("FIELDWATCH_TOKEN") or secrets.token_urlsafe(18)
    opcua = SimServerThread(SimOptions(port=free_port()))
    opcua_url = opcua.start()
    mqtt_port = free_port()
    broker = start_broker(mqtt_port, workdir)
    # one payload in ten seconds is not JSON: GET /api/v1/parse-errors has something to show
    publisher = SimulatedPublisher("127.0.0.1", mqtt_port, silent_after_s=args.silent_after, malformed_every=10)
    publisher.start()
    config = demo_config(
        workdir,
        listen=args.listen,
        token=token,
        opcua_url=opcua_url,
        mqtt_port=mqtt_port,
        offline_after_s=args.offline_after,
    )

    def _announce(daemon: Any) -> None:
        url = daemon.url
        print(
            f"\nfieldwatch demo is running ({broker.kind} broker on port {mqtt_port}, OPC UA at {opcua_url})\n"
            f"  page:   {url}/   <- open this in a browser\n"
            f"  API:    {url}/api/v1/sites\n"
            f"  token:  {token}\n"
            f"  data:   {workdir}\n"
            f"try:\n"
            f"  fieldwatch status --url {url}\n"
            f"  FIELDWATCH_TOKEN={token} fieldwatch disable demo-network --url {url}\n"
            f"  curl {url}/metrics\n"
            f"  fieldwatch logs -f --url {url}\n"
            f"Ctrl-C stops everything.\n",
            flush=True,
        )

    try:
        return run_config(config, on_started=_announce)
    finally:
        publisher.stop()
        broker.stop()
        opcua.stop()
        print("fieldwatch demo stopped", file=sys.stderr, flush=True)
