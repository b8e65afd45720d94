"""Endpoint views of the API (SPEC section 6 shape), cached per endpoint with their JSON text.

`GET /api/v1/sites` shows every endpoint. At 10,000 endpoints, building 10,000 dicts,
formatting 30,000 timestamps and encoding it all took most of a second per listing
(and most of the daemon's CPU when polled every few seconds), while between two
listings most endpoints did not change at all. So each endpoint's view is kept as
JSON text, rebuilt only when its board row, its enabled flag or its config changed,
or when the freshness rule may have changed what a reader is shown; and a rebuild
only formats the few fields that change (the site, name, kind and config parts are
encoded once).
"""

from __future__ import annotations

import functools
import json
import math
import threading
from typing import Any

from fieldwatch import states
from fieldwatch.status import EndpointStatus, StatusRow, effective_state
from fieldwatch.timeutil import to_rfc3339

__all__ = ["ViewCache", "endpoint_view", "view_text"]

#: `since` rarely changes and a `last_data_at` is shown by several listings in a row.
_rfc3339 = functools.lru_cache(maxsize=1 << 15)(to_rfc3339)


def endpoint_view(
    status: EndpointStatus | StatusRow,
    site: str,
    name: str,
    kind: str,
    enabled: bool,
    public: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """SPEC section 6 endpoint shape (state after the reader freshness rule at `now`)."""
    state, reason = effective_state(status, now)
    return {
        "site": site,
        "name": name,
        "kind": kind,
        "enabled": enabled,
        "state": state,
        "since": _rfc3339(status.since),
        "reason": reason,
        "down_since": _rfc3339(status.down_since),
        "last_data_at": _rfc3339(status.last_data_at),
        "generation": status.generation,
        "restarts": status.restarts,
        "reconnects": status.reconnects,
        "config": public,
    }


def _valid_until(row: StatusRow, state: str) -> float:
    """Until when the shown state stays what the freshness rule shows (it reads the clock)."""
    if state != row.state:
        return -math.inf  # demoted to stale: its reason names the data's age, which keeps growing
    if row.state == states.UP and row.fresh_within_s is not None and row.last_data_at is not None:
        return row.last_data_at + row.fresh_within_s
    return math.inf


@functools.lru_cache(maxsize=4096)
def _json_text(value: str | None) -> str:
    """A string (or None) as JSON; reasons and names repeat, so they are encoded once."""
    return json.dumps(value, ensure_ascii=False)


def _time_text(ts: float | None) -> str:
    text = _rfc3339(ts)
    return "null" if text is None else f'"{text}"'  # RFC 3339 text needs no escaping


def view_text(
    row: StatusRow, head: str, enabled: bool, config_text: str, now: float
) -> tuple[str, float]:
    """The JSON text of `endpoint_view(...)` (same keys and values) and until when it holds.

    `head` is the encoded `"site": .., "name": .., "kind": ..` part and `config_text` the
    encoded config: both change only with the config, so they are encoded once.
    """
    state, reason = effective_state(row, now)
    text = (
        f'{{{head}, "enabled": {"true" if enabled else "false"}, "state": "{state}", '
        f'"since": {_time_text(row.since)}, "reason": {_json_text(reason)}, '
        f'"down_since": {_time_text(row.down_since)}, "last_data_at": {_time_text(row.last_data_at)}, '
        f'"generation": {int(row.generation)}, "restarts": {int(row.restarts)}, '
        f'"reconnects": {int(row.reconnects)}, "config": {config_text}}}'
    )
    return text, _valid_until(row, state)


class ViewCache:
    """endpoint_id -> (inputs, JSON text of its view); rebuilt when an input changed.

    Shared by the HTTP threads (entries are replaced whole under the lock).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[StatusRow, bool, Any, float, str]] = {}
        self._static: dict[int, tuple[Any, str, str]] = {}  # endpoint_id -> (public, head, config text)

    def text(
        self, row: StatusRow, site: str, name: str, kind: str, enabled: bool, public: dict[str, Any], now: float
    ) -> str:
        """The JSON text of the endpoint's view, from the cache when nothing it shows changed."""
        endpoint_id = row.endpoint_id
        with self._lock:
            entry = self._entries.get(endpoint_id)
            static = self._static.get(endpoint_id)
        if entry is not None and entry[2] is public and entry[1] == enabled and now <= entry[3] and entry[0] == row:
            return entry[4]
        if static is None or static[0] is not public:
            head = f'"site": {_json_text(site)}, "name": {_json_text(name)}, "kind": {_json_text(kind)}'
            static = (public, head, json.dumps(public, ensure_ascii=False))
        text, valid_until = view_text(row, static[1], enabled, static[2], now)
        with self._lock:
            self._entries[endpoint_id] = (row, enabled, public, valid_until, text)
            self._static[endpoint_id] = static
        return text

    def forget(self, endpoint_ids: list[int]) -> None:
        """Drop the views of endpoints that were removed or replaced."""
        with self._lock:
            for endpoint_id in endpoint_ids:
                self._entries.pop(endpoint_id, None)
                self._static.pop(endpoint_id, None)
