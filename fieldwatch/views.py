"""Endpoint views of the API (SPEC section 6 shape), cached per endpoint with their JSON text.

`GET /api/v1/sites` shows every endpoint. At 10,000 endpoints, building 10,000 dicts,
formatting 30,000 timestamps and encoding it all took most of a second per listing
(and most of the daemon's CPU when polled every few seconds), while between two
listings most endpoints did not change at all. So each endpoint's view is kept with
its JSON text and rebuilt only when its board row, its enabled flag or its config
changed, or when the freshness rule may have changed what a reader is shown.
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

__all__ = ["ViewCache", "endpoint_view"]

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


def _valid_until(row: StatusRow, view: dict[str, Any]) -> float:
    """Until when the view stays what the freshness rule shows (it reads the clock)."""
    if view["state"] != row.state:
        return -math.inf  # demoted to stale: its reason names the data's age, which keeps growing
    if row.state == states.UP and row.fresh_within_s is not None and row.last_data_at is not None:
        return row.last_data_at + row.fresh_within_s
    return math.inf


class ViewCache:
    """endpoint_id -> (inputs, view, JSON text); a view is rebuilt when an input changed.

    Shared by the HTTP threads; the views handed out are shared too, so callers copy
    before changing one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[StatusRow, bool, Any, float, dict[str, Any], str]] = {}

    def get(
        self, row: StatusRow, site: str, name: str, kind: str, enabled: bool, public: dict[str, Any], now: float
    ) -> tuple[dict[str, Any], str]:
        """The view of `row` and its JSON text, from the cache when nothing it shows changed."""
        with self._lock:
            entry = self._entries.get(row.endpoint_id)
        if entry is not None and entry[2] is public and entry[1] == enabled and now <= entry[3] and entry[0] == row:
            return entry[4], entry[5]
        view = endpoint_view(row, site, name, kind, enabled, public, now)
        text = json.dumps(view, ensure_ascii=False)
        with self._lock:
            self._entries[row.endpoint_id] = (row, enabled, public, _valid_until(row, view), view, text)
        return view, text

    def forget(self, endpoint_ids: list[int]) -> None:
        """Drop the views of endpoints that were removed or replaced."""
        with self._lock:
            for endpoint_id in endpoint_ids:
                self._entries.pop(endpoint_id, None)
