"""A timeout-bounded OPC UA session for one actor, running on the shared loop.

Every request (`*_nowait`) submits a coroutine to `OpcuaLoop` and returns a future
that resolves within ``timeout_s``; every failure comes out as a `SessionError`
carrying a classified `Failure`. Nothing blocks the calling (actor) thread. asyncua's own reconnect is
off: when its watchdog notices a dead link the session marks itself lost and
the owning actor decides what to do (reconnect with backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds

from fieldwatch.actors.opcua._asyncua import DataChangeHandler, LossObserver, stop_publishing
from fieldwatch.actors.opcua._security import apply_security, pin_mismatch
from fieldwatch.actors.opcua._trace import PeerTrace
from fieldwatch.actors.opcua._url import DEFAULT_PORT, normalize_url, path_key
from fieldwatch.actors.opcua._values import NodeValue, ServerHealth, health_from, node_values, parse_node_id
from fieldwatch.actors.opcua.classify import Failure, SessionError, classify, status_name
from fieldwatch.actors.opcua.loop import OpcuaLoop
from fieldwatch.states import DOWN, FAULTY

__all__ = ["DEFAULT_PORT", "NodeValue", "OpcuaSession", "ServerHealth", "SessionError"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_STATE_NODE = ua.NodeId.from_string("i=2259")  # Server.ServerStatus.State
_TIME_NODE = ua.NodeId.from_string("i=2258")  # Server.ServerStatus.CurrentTime


def _failed(err: BaseException) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(err)
    return future


class OpcuaSession:
    """One endpoint's client session, used from a single actor thread."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        security: Any = None,
        username: str | None = None,
        password: str | None = None,
        loop: OpcuaLoop | None = None,
        on_connection_lost: Callable[[str], None] | None = None,
    ) -> None:
        self._raw_url = url
        self._timeout_s = float(timeout_s)
        self._security = security
        self._username = username
        self._password = password
        self._loop = loop if loop is not None else OpcuaLoop.shared()
        self._on_connection_lost = on_connection_lost
        self._client: Client | None = None
        self._trace: PeerTrace | None = None
        self._lost: Failure | None = None
        self._offered: list[str] = []
        self._subscriptions: list[Subscription] = []
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"OpcuaSession({self._raw_url!r})"

    # ------------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        """The endpoint URL as configured."""
        return self._raw_url

    @property
    def offered(self) -> list[str]:
        """Endpoint URLs the server offered at the last successful connect."""
        return list(self._offered)

    @property
    def connected(self) -> bool:
        """Whether a session is established and no loss has been noticed since."""
        return self._client is not None and self._lost is None

    def path_offered(self) -> bool:
        """Whether the configured URL's path is among the paths of the offered endpoints."""
        _url, path = normalize_url(self._raw_url)
        return any(path_key(urlsplit(offered).path) == path for offered in self._offered)

    # -- requests: each future resolves (on the loop thread) within timeout_s with the
    #    result or a SessionError; the actor tells itself from a done-callback.

    def connect_nowait(self) -> Future[list[str]]:
        """Connect (dropping any previous connection); the endpoint URLs the server offers."""
        try:
            url, _path = normalize_url(self._raw_url)
        except SessionError as err:
            return _failed(err)
        return self._submit(self._connect(url), "connect")

    def health_nowait(self) -> Future[ServerHealth]:
        """Read ServerStatus.State (i=2259) and CurrentTime (i=2258) in one Read request."""
        return self._submit(self._health(), "health read")

    def probe_nowait(self, node_ids: Sequence[str]) -> Future[tuple[ServerHealth, list[NodeValue]]]:
        """The server's health and the nodes' values, all in ONE Read request."""
        return self._submit(self._probe(list(node_ids)), "health read")

    def read_nowait(self, node_ids: Sequence[str]) -> Future[list[NodeValue]]:
        """Read the nodes' values in one Read request; a bad status is a value with good=False."""
        return self._submit(self._read(list(node_ids)), "read")

    def subscribe_nowait(
        self, node_ids: Sequence[str], publishing_interval_s: float, callback: Callable[[NodeValue], None]
    ) -> Future[None]:
        """Subscribe to data changes; `callback` runs on the loop thread (it should only `tell`).

        Node ids the server rejects are reported once through `callback` with
        their status code (good=False) instead of failing.
        """
        return self._submit(self._subscribe(list(node_ids), publishing_interval_s, callback), "subscribe")

    def close_nowait(self) -> Future[None]:
        """Close the session (politely if the link is alive); the future fails with nothing but SessionError."""
        return self._submit(self._drop_client(graceful=self._lost is None), "close")

    # ------------------------------------------------------------------ plumbing

    def _submit(self, coro: Coroutine[Any, Any, _T], what: str) -> Future[_T]:
        """Schedule `coro` on the loop, bounded by timeout_s, failures translated into SessionError."""
        if self._loop.in_loop_thread():
            coro.close()
            raise RuntimeError("OpcuaSession methods must not be called on the OPC UA loop thread")
        try:
            return self._loop.submit(self._bounded(coro, what))
        except RuntimeError as err:  # the loop was stopped (daemon shutting down)
            return _failed(SessionError(Failure(DOWN, f"{what}: {err}")))

    async def _bounded(self, coro: Coroutine[Any, Any, _T], what: str) -> _T:
        try:
            return await asyncio.wait_for(coro, self._timeout_s)
        except SessionError:
            raise
        except TimeoutError as err:
            during = f" (during {self._trace.step})" if what == "connect" and self._trace is not None else ""
            failure = Failure(DOWN, f"{what}: no answer within {self._timeout_s:g} s{during}")
            self._mark_lost(failure)
            raise SessionError(failure) from err
        except Exception as err:  # classify every library/OS error into faulty or down
            failure = classify(err) if self._trace is None else self._trace.explain(err, what)
            if failure.state == DOWN:
                if self._lost is not None:
                    failure = self._lost  # the cause the watchdog saw, not the follow-up error
                self._mark_lost(failure)
            raise SessionError(failure) from err

    def _mark_lost(self, failure: Failure, client: Client | None = None) -> None:
        """Remember that the link is gone and abort its client in the background (loop thread only).

        After a loss every call fails at once with the same failure until
        `connect` is called again: a timed-out request may still be pending on
        the old channel and its late answer must not be mistaken for health.
        """
        current = self._client
        if current is None or (client is not None and client is not current):
            return
        if self._lost is None:
            self._lost = failure
        # Not awaited here: this may run inside asyncua's supervisor task, which the teardown cancels.
        task = asyncio.get_running_loop().create_task(self._drop_client(graceful=False, only=current))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _require_client(self) -> Client:
        if self._lost is not None:
            raise SessionError(self._lost)
        if self._client is None:
            raise SessionError(Failure(DOWN, "not connected"))
        return self._client

    async def _connect(self, url: str) -> list[str]:
        await self._drop_client(graceful=False)
        self._lost = None
        self._offered = []
        client = Client(url, timeout=self._timeout_s, watchdog_intervall=max(1.0, self._timeout_s))
        client.session_timeout = 60_000  # ms: an abandoned session is dropped by the server soon
        client.description = client.name = "fieldwatch"
        client.connection_lost_callback = self._make_lost_callback(client)
        client.uaclient.observer = LossObserver(client)
        self._client = client
        trace = self._trace = PeerTrace(client)
        try:
            if self._security is not None:
                await apply_security(client, self._security)
            if self._username:
                client.set_user(self._username)
            if self._password:
                client.set_password(self._password)
            await client.connect(auto_reconnect=False)
            endpoints = await client.get_endpoints()
        except Exception as err:  # every handshake failure, explained by what the server said
            await self._drop_client(graceful=False)
            failure = trace.explain(err)
            if failure.code == "BadTcpEndpointUrlInvalid":
                offered = sorted({str(ep.EndpointUrl) for ep in await self._discover(url, base=True)})
                failure = Failure(FAULTY, "BadTcpEndpointUrlInvalid", offered=tuple(offered), code=failure.code)
            elif trace.step == "open secure channel" and getattr(self._security, "server_cert", None):
                failure = pin_mismatch(self._security, await self._discover(url)) or failure
            raise SessionError(failure) from err
        except BaseException:  # cancelled (the timeout): drop the half-open client, then propagate
            await self._drop_client(graceful=False)
            raise
        self._offered = sorted({str(ep.EndpointUrl) for ep in endpoints})
        return list(self._offered)

    async def _discover(self, url: str, *, base: bool = False) -> list[ua.EndpointDescription]:
        """GetEndpoints over a None channel (through the base URL, without path, for a refused path)."""
        if base:
            parts = urlsplit(url)
            url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        probe = Client(url, timeout=self._timeout_s)
        try:
            endpoints = await asyncio.wait_for(probe.connect_and_get_server_endpoints(), self._timeout_s / 2)
        except Exception as err:  # noqa: BLE001 - best effort: the reason stays the handshake's failure
            logger.debug("%r: GetEndpoints on %s failed: %r", self, url, err)
            probe.disconnect_socket()
            return []
        return list(endpoints)

    def _make_lost_callback(self, client: Client) -> Callable[[Exception], Coroutine[Any, Any, None]]:
        async def on_lost(exc: Exception) -> None:
            if client is not self._client or self._lost is not None:
                return
            if isinstance(exc, TimeoutError):
                reason = f"the server stopped answering (no reply within {client._watchdog_intervall:g} s)"
            elif str(exc) == "transport lost":
                reason = "the connection was closed"
            else:
                reason = self._trace.explain(exc, "keep-alive").reason if self._trace else classify(exc).reason
            failure = Failure(DOWN, f"connection lost: {reason}")
            logger.debug("%r: connection lost: %s", self, failure.reason)
            self._mark_lost(failure, client)
            if self._on_connection_lost is not None:
                try:
                    self._on_connection_lost(failure.reason)
                except Exception:  # a broken callback must not break the loop thread
                    logger.exception("%r: on_connection_lost callback failed", self)

        return on_lost

    async def _drop_client(self, *, graceful: bool, only: Client | None = None) -> None:
        """Close the current client: politely (bounded) when the link is alive, else abort the socket."""
        client = self._client
        if client is None or (only is not None and client is not only):
            return
        self._client = None
        self._subscriptions = []
        client.uaclient.request_disconnect()
        if graceful:
            try:
                await asyncio.wait_for(client.close_session(), self._timeout_s / 2)
                await client.close_secure_channel()
            except (OSError, RuntimeError, TimeoutError) as err:  # the peer may be gone; abort below
                logger.debug("%r: graceful close failed: %r", self, err)
        stop_publishing(client)
        protocol = client.uaclient.protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()
            await asyncio.sleep(0)  # let connection_lost run so pending requests fail now
        try:
            await asyncio.wait_for(client.close_session(), 0.5)
        except (OSError, RuntimeError, TimeoutError) as err:  # already closed: nothing to do
            logger.debug("%r: close_session after abort: %r", self, err)
        client.disconnect_socket()

    async def _health(self) -> ServerHealth:
        values = await self._read_values([_STATE_NODE, _TIME_NODE])
        return health_from(values[0], values[1])

    async def _probe(self, node_ids: list[str]) -> tuple[ServerHealth, list[NodeValue]]:
        parsed = [(text, parse_node_id(text)) for text in node_ids]
        valid = [nid for _text, nid in parsed if nid is not None]
        values = await self._read_values([_STATE_NODE, _TIME_NODE, *valid])
        return health_from(values[0], values[1]), node_values(parsed, values[2:])

    async def _read(self, node_ids: list[str]) -> list[NodeValue]:
        parsed = [(text, parse_node_id(text)) for text in node_ids]
        valid = [nid for _text, nid in parsed if nid is not None]
        values = await self._read_values(valid) if valid else []
        return node_values(parsed, values)

    async def _read_values(self, nids: list[ua.NodeId]) -> list[ua.DataValue]:
        client = self._require_client()
        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        for nid in nids:
            item = ua.ReadValueId()
            item.NodeId = nid
            item.AttributeId = AttributeIds.Value
            params.NodesToRead.append(item)
        values = await client.uaclient.read(params)
        if len(values) != len(nids):
            raise SessionError(Failure(DOWN, f"Read returned {len(values)} results for {len(nids)} nodes"))
        return values

    async def _subscribe(self, ids: list[str], interval_s: float, callback: Callable[[NodeValue], None]) -> None:
        client = self._require_client()
        names: dict[ua.NodeId, str] = {}
        for text in ids:
            nid = parse_node_id(text)
            if nid is None:
                callback(NodeValue(text, None, "BadNodeIdInvalid", False, None, None))
            else:
                names[nid] = text
        if not names:
            return
        handler = DataChangeHandler(names, callback)
        subscription = await client.create_subscription(interval_s * 1000.0, handler)
        self._subscriptions.append(subscription)
        nodes: list[Node] = [client.get_node(nid) for nid in names]
        results = await subscription.subscribe_data_change(nodes, sampling_interval=ua.Double(interval_s * 1000.0))
        for nid, result in zip(names, results, strict=True):
            if isinstance(result, ua.StatusCode):
                callback(NodeValue(names[nid], None, status_name(result), False, None, None))
