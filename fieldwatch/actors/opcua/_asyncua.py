"""asyncua plumbing for OpcuaSession: subscription handler, loss observer, security setup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif
from asyncua.crypto import security_policies
from asyncua.observer import Observer

from fieldwatch.actors.opcua._values import NodeValue, node_value
from fieldwatch.actors.opcua.classify import Failure
from fieldwatch.states import FAULTY

__all__ = ["DataChangeHandler", "LossObserver", "SecurityRejected", "apply_security", "stop_publishing"]

logger = logging.getLogger(__name__)


class SecurityRejected(Exception):
    """The security settings cannot be applied (unknown policy/mode, missing files): a faulty config."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class DataChangeHandler:
    """asyncua subscription handler forwarding each data change as a NodeValue."""

    def __init__(self, names: dict[ua.NodeId, str], callback: Callable[[NodeValue], None]) -> None:
        self._names = names
        self._callback = callback

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        """Called by asyncua on the loop thread for every monitored-item notification."""
        text = self._names.get(node.nodeid, node.nodeid.to_string())
        try:
            self._callback(node_value(text, data.monitored_item.Value))
        except Exception:  # a broken callback must not kill asyncua's dispatch task
            logger.exception("subscription callback failed for %s", text)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        """The server reports the subscription's status changed (e.g. it timed out)."""
        logger.debug("subscription status change: %s", status.Status)


def stop_publishing(client: Client) -> None:
    """Cancel asyncua's publish loop, which would otherwise log a traceback per retry on a dead link."""
    task = getattr(client.uaclient.session, "_publish_task", None)  # no public handle in asyncua 2.1
    if isinstance(task, asyncio.Task) and not task.done():
        task.cancel()


class LossObserver(Observer):
    """asyncua's instrumentation hook, used to stop publishing the moment the transport drops."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def observe_request(self, request: Any) -> AbstractContextManager[None]:
        """No per-request timing (the base class times every request)."""
        return nullcontext()

    def on_state_change(self, state: UaClientState) -> None:
        """Called synchronously by asyncua on every client state change."""
        if state in (UaClientState.DISCONNECTED, UaClientState.DISCONNECTING):
            stop_publishing(self._client)


async def apply_security(client: Client, security: Any) -> None:
    """Configure a security policy (Basic256Sha256, ...) from a SecurityConfig-like object."""
    policy = str(getattr(security, "policy", None) or "None")
    if policy == "None":
        return
    policy_class = getattr(security_policies, "SecurityPolicy" + policy.replace("_", ""), None)
    if policy_class is None:
        raise SecurityRejected(Failure(FAULTY, f"unknown security policy {policy!r}"))
    mode_name = str(getattr(security, "mode", None) or "SignAndEncrypt")
    mode = getattr(ua.MessageSecurityMode, mode_name, None)
    if mode is None:
        raise SecurityRejected(Failure(FAULTY, f"unknown security mode {mode_name!r}"))
    cert, key = getattr(security, "cert", None), getattr(security, "key", None)
    if not cert or not key:
        raise SecurityRejected(Failure(FAULTY, f"security policy {policy} needs cert and key"))
    server_cert = getattr(security, "server_cert", None)
    await client.set_security(
        policy_class, str(cert), str(key), server_certificate=str(server_cert) if server_cert else None, mode=mode
    )
