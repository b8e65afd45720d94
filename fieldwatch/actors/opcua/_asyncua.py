"""asyncua plumbing for OpcuaSession: subscription handler and loss observer."""

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
from asyncua.observer import Observer

from fieldwatch.actors.opcua._values import NodeValue, node_value

__all__ = ["DataChangeHandler", "LossObserver", "stop_publishing"]

logger = logging.getLogger(__name__)


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
