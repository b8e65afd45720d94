"""Conversion of asyncua DataValues into plain NodeValues (numbers, strings, Unix times)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.ua.uaerrors import UaError

from fieldwatch.actors.opcua.classify import status_name

__all__ = ["NodeValue", "ServerHealth", "health_from", "node_value", "node_values", "parse_node_id", "unix_time"]


@dataclass(frozen=True, slots=True)
class NodeValue:
    """One node's value as read or notified: quality is the status code name ("Good" when good)."""

    node_id: str
    value: Any
    quality: str
    good: bool
    source_time: float | None
    server_time: float | None



def unix_time(moment: datetime | None) -> float | None:
    """An OPC UA DateTime as Unix seconds (naive means UTC; the 1601 "null" time is None)."""
    if moment is None or moment.year < 1971:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _plain(value: Any) -> Any:
    """A Variant's value as plain Python (numbers, strings, lists) that storage can keep."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return unix_time(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.QualifiedName):
        return value.to_string()
    if isinstance(value, ua.NodeId):
        return value.to_string()
    if isinstance(value, ua.StatusCode):
        return status_name(value)
    return str(value)


def node_value(node_id: str, data: ua.DataValue) -> NodeValue:
    """Convert an asyncua DataValue into a NodeValue for `node_id`."""
    code = data.StatusCode
    good = code is None or code.is_good()
    raw = data.Value.Value if data.Value is not None else None
    return NodeValue(
        node_id=node_id,
        value=_plain(raw) if good or raw is not None else None,
        quality=status_name(code),
        good=good,
        source_time=unix_time(data.SourceTimestamp),
        server_time=unix_time(data.ServerTimestamp),
    )


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """The server's ServerStatus: its state (0 = Running), name, clock and whether it runs."""

    state: int
    state_name: str
    current_time: float | None
    running: bool


def health_from(state_dv: ua.DataValue, time_dv: ua.DataValue) -> ServerHealth:
    """ServerHealth from the DataValues of ServerStatus.State and CurrentTime."""
    state_code = state_dv.StatusCode
    if state_code is not None and not state_code.is_good():
        return ServerHealth(-1, status_name(state_code), None, False)
    raw = state_dv.Value.Value if state_dv.Value is not None else None
    state = int(raw) if isinstance(raw, int) else -1
    try:
        name = ua.ServerState(state).name
    except ValueError:
        name = f"Unknown({state})"
    current = time_dv.Value.Value if time_dv.Value is not None else None
    current_time = unix_time(current) if isinstance(current, datetime) else None
    return ServerHealth(state, name, current_time, state == ua.ServerState.Running)


def node_values(parsed: list[tuple[str, ua.NodeId | None]], values: list[ua.DataValue]) -> list[NodeValue]:
    """Pair each requested id with its DataValue (unparsable ids get BadNodeIdInvalid)."""
    results = iter(values)
    return [
        node_value(text, next(results)) if nid is not None
        else NodeValue(text, None, "BadNodeIdInvalid", False, None, None)
        for text, nid in parsed
    ]


def parse_node_id(text: str) -> ua.NodeId | None:
    """The NodeId a string like "ns=2;s=Pump1.Running" names, or None if it does not parse."""
    try:
        return ua.NodeId.from_string(text)
    except (UaError, ValueError, TypeError):
        return None
