"""A small OPC UA simulation server (asyncua) for tests, benchmarks and `fieldwatch demo`.

Run ``python -m fieldwatch.sim.opcua_server --port 4840``; it prints
``READY <endpoint-url>`` once it serves. The namespace ``urn:fieldwatch:sim``
holds three variables under ``Objects/Plant``, updated every 0.5 s:

- ``ns=2;s=Tank1.Level``  float, a sine wave with noise
- ``ns=2;s=Pump1.Running`` bool, toggles every 5 s
- ``ns=2;s=Counter``       int, +1 per second

``--strict-path`` makes the server refuse a Hello whose EndpointUrl path it
does not offer with ``BadTcpEndpointUrlInvalid`` (asyncua accepts any path by
default); the bare ``opc.tcp://host:port`` stays accepted as the discovery URL
so a client can still ask which endpoints exist. ``--bad-after S`` makes the
values stop changing after S seconds and turns their status to
``BadNoCommunication`` while sessions stay up; ``--freeze-values`` never
changes them at all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server import binary_server_asyncio
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import struct_from_binary, uatcp_to_binary

__all__ = ["NAMESPACE", "NODES", "SimOptions", "SimServerThread", "run_server"]

logger = logging.getLogger(__name__)

NAMESPACE = "urn:fieldwatch:sim"
#: The simulated variables by short name (namespace index 2 is the first registered one).
NODES: dict[str, str] = {
    "level": "ns=2;s=Tank1.Level",
    "pump": "ns=2;s=Pump1.Running",
    "counter": "ns=2;s=Counter",
}
DEFAULT_PATH = "/freeopcua/server/"


@dataclass(frozen=True, slots=True)
class SimOptions:
    """How the simulation server listens and behaves."""

    port: int
    host: str = "127.0.0.1"
    path: str = DEFAULT_PATH
    strict_path: bool = False
    bad_after_s: float | None = None
    freeze_values: bool = False
    update_s: float = 0.5
    user: str | None = None  # "name:password": then only that user (or anonymous) may log in
    anonymous: bool = True

    @property
    def url(self) -> str:
        """The endpoint URL the server offers."""
        return f"opc.tcp://{self.host}:{self.port}{self.path}"


# ---------------------------------------------------------------- strict endpoint path


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


class _StrictProtocol(binary_server_asyncio.OPCUAProtocol):
    """Refuses a Hello whose EndpointUrl path is not offered, as many real servers do."""

    allowed_paths: frozenset[str] = frozenset()

    async def _process_one_msg(self, header: Any, buf: Any) -> bool:
        if header.MessageType == ua.MessageType.Hello:
            hello = struct_from_binary(ua.Hello, buf.copy())
            path = urlsplit(str(hello.EndpointUrl)).path.rstrip("/")
            if path not in self.allowed_paths:
                logger.info("refusing Hello for %s (path not offered)", hello.EndpointUrl)
                error = ua.ErrorMessage(_status(StatusCodes.BadTcpEndpointUrlInvalid), ua.String("path not offered"))
                if self.transport is not None:
                    self.transport.write(uatcp_to_binary(ua.MessageType.Error, error))  # type: ignore[arg-type]
                    self.transport.close()
                return False
        return await super()._process_one_msg(header, buf)


class _StrictBinaryServer(binary_server_asyncio.BinaryServer):
    """A binary server whose connections use `_StrictProtocol`."""

    allowed_paths: frozenset[str] = frozenset()

    def _make_protocol(self) -> binary_server_asyncio.OPCUAProtocol:
        protocol = _StrictProtocol(
            iserver=self.iserver,
            policies=self._policies,
            clients=self.clients,
            closing_tasks=self.closing_tasks,
            limits=self.limits,
        )
        protocol.allowed_paths = self.allowed_paths
        return protocol


class _SimServer(Server):
    """asyncua's Server, optionally with the strict binary server."""

    strict_paths: frozenset[str] | None = None

    async def start(self) -> None:
        if self.strict_paths is None:
            await super().start()
            return
        # Same steps as Server.start(), with our BinaryServer subclass.
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            bserver = _StrictBinaryServer(self.iserver, host, port, self.limits)  # type: ignore[arg-type]
            bserver.allowed_paths = self.strict_paths
            bserver.set_policies(self._policies)
            self.bserver = bserver
            await bserver.start()
        except Exception:
            await self.iserver.stop()
            raise


class _OneUser(UserManager):
    """Accepts anonymous logins (if allowed) and one user name/password."""

    def __init__(self, user: str | None, anonymous: bool) -> None:
        name, _, password = (user or "").partition(":")
        self._name, self._password, self._anonymous = name, password, anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> Any:
        if username is None and certificate is None:
            return User(role=UserRole.User) if self._anonymous else None
        if username == self._name and password == self._password:
            return User(role=UserRole.User, name=username)
        return None


# ---------------------------------------------------------------- the simulation


async def _build(options: SimOptions) -> tuple[Server, dict[str, Node]]:
    sim = _SimServer(user_manager=_OneUser(options.user, options.anonymous) if options.user else None)
    if options.strict_path:
        sim.strict_paths = frozenset({options.path.rstrip("/"), ""})
    await sim.init()
    sim.set_endpoint(options.url)
    sim.set_server_name("fieldwatch OPC UA simulation")
    sim.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await sim.register_namespace(NAMESPACE)
    plant = await sim.nodes.objects.add_object(ua.NodeId.from_string(f"ns={idx};s=Plant"), "Plant")
    nodes = {
        "level": await plant.add_variable(
            ua.NodeId.from_string(f"ns={idx};s=Tank1.Level"), "Level", 5.0, ua.VariantType.Double
        ),
        "pump": await plant.add_variable(
            ua.NodeId.from_string(f"ns={idx};s=Pump1.Running"), "Running", False, ua.VariantType.Boolean
        ),
        "counter": await plant.add_variable(
            ua.NodeId.from_string(f"ns={idx};s=Counter"), "Counter", 0, ua.VariantType.Int64
        ),
    }
    return sim, nodes


async def _simulate(sim: Server, nodes: dict[str, Node], options: SimOptions) -> None:
    start = time.monotonic()
    rng = random.Random(42)
    while True:
        elapsed = time.monotonic() - start
        if options.bad_after_s is not None and elapsed >= options.bad_after_s:
            bad = _status(StatusCodes.BadNoCommunication)
            for node in nodes.values():
                current = await node.read_data_value(raise_on_bad_status=False)
                await sim.write_attribute_value(
                    node.nodeid, ua.DataValue(current.Value, StatusCode=bad, SourceTimestamp=_utcnow())
                )
            logger.info("values are now BadNoCommunication and frozen")
            return
        level = 5.0 + 4.0 * math.sin(elapsed / 10.0) + rng.uniform(-0.1, 0.1)
        values = {"level": level, "pump": int(elapsed / 5.0) % 2 == 1, "counter": int(elapsed)}
        variants = {
            "level": ua.Variant(values["level"], ua.VariantType.Double),
            "pump": ua.Variant(values["pump"], ua.VariantType.Boolean),
            "counter": ua.Variant(values["counter"], ua.VariantType.Int64),
        }
        for name, node in nodes.items():
            await sim.write_attribute_value(node.nodeid, ua.DataValue(variants[name], SourceTimestamp=_utcnow()))
        await asyncio.sleep(options.update_s)


def _utcnow() -> Any:
    return datetime.now(UTC)


async def run_server(
    options: SimOptions,
    *,
    ready: Callable[[str], None] | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Serve until `stop_event` is set (or forever); call `ready(url)` once listening."""
    sim, nodes = await _build(options)
    await sim.start()
    task: asyncio.Task[None] | None = None
    try:
        if not options.freeze_values:
            task = asyncio.create_task(_simulate(sim, nodes, options))
        if ready is not None:
            ready(options.url)
        await (stop_event.wait() if stop_event is not None else asyncio.Event().wait())
    finally:
        if task is not None:
            task.cancel()
        await sim.stop()


class SimServerThread:
    """Runs the simulation server in a daemon thread of this process (for `fieldwatch demo`)."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="opcua-sim", daemon=True)

    def start(self, timeout_s: float = 15.0) -> str:
        """Start serving; return the endpoint URL once ready (RuntimeError if it failed)."""
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"OPC UA simulation server did not start: {self._error!r}")
        return self.options.url

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving and join the thread."""
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(
                run_server(self.options, ready=lambda _url: self._ready.set(), stop_event=self._stop)
            )
        except Exception as err:  # noqa: BLE001  (reported to start(); the thread ends here)
            self._error = err
            self._ready.set()
        finally:
            self._loop.close()


def _parse_args(argv: list[str] | None) -> SimOptions:
    parser = argparse.ArgumentParser(prog="python -m fieldwatch.sim.opcua_server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default=DEFAULT_PATH, help="endpoint path (default %(default)s)")
    parser.add_argument("--strict-path", action="store_true", help="refuse paths not offered")
    parser.add_argument("--bad-after", type=float, default=None, metavar="S", help="go bad after S seconds")
    parser.add_argument("--freeze-values", action="store_true", help="never change the values")
    parser.add_argument("--update", type=float, default=0.5, metavar="S", help="update period")
    parser.add_argument("--user", default=None, metavar="NAME:PASSWORD", help="accept this user")
    parser.add_argument("--no-anonymous", action="store_true", help="refuse anonymous logins")
    args = parser.parse_args(argv)
    path = args.path if args.path.startswith("/") else "/" + args.path
    return SimOptions(
        port=args.port,
        host=args.host,
        path=path,
        strict_path=args.strict_path,
        bad_after_s=args.bad_after,
        freeze_values=args.freeze_values,
        update_s=args.update,
        user=args.user,
        anonymous=not args.no_anonymous,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve until SIGTERM or SIGINT."""
    options = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # it warns about NoSecurity at every start

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        def ready(url: str) -> None:
            print(f"READY {url}", flush=True)

        await run_server(options, ready=ready, stop_event=stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
