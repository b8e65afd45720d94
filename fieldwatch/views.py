"""Endpoint views of the API (SPEC section 6 shape), cached per endpoint with their JSON text.

`GET /api/v1/sites` shows every endpoint. At 10,000 endpoints, building 10,000 dicts,
formatting 30,000 timestamps and encoding it all took most of a second per listing
(and most of the daemon's CPU when polled every few seconds), while between two
listings most endpoints did not change at all. So each endpoint's view is kept as
JSON text, rebuilt only when its ledger row, its enabled flag or its config changed,
or when the freshness rule may have changed what a reader is shown; and a rebuild
only formats the few fields that change (the site, name, kind and config parts are
encoded once).
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Sequence
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
    return json.dumps(value, ensure_ascii=True)


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


_Entry = tuple[StatusRow, bool, Any, float, str, str, str]
"""(row, enabled, public config, valid until, view text, encoded head, encoded config)"""


class ViewCache:
    """endpoint_id -> the JSON text of its view and what it was built from; rebuilt on change.

    Shared by the HTTP threads: entries are read and replaced whole, under one lock
    acquisition per listing each way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}

    def texts(
        self, site: str, parts: Sequence[tuple[Any, int, bool, dict[str, Any]]], rows: Sequence[StatusRow | None],
        now: float,
    ) -> list[str]:
        """The view texts of a site's endpoints: `parts` (config, id, enabled, public config) and
        their board `rows` (None: not on the board, left out), from the cache where nothing shown changed."""
        with self._lock:
            get = self._entries.get
            cached = [None if row is None else get(row.endpoint_id) for row in rows]
        out: list[str] = []
        built: list[tuple[int, _Entry]] = []
        for (ep, _, enabled, public), row, entry in zip(parts, rows, cached, strict=True):
            if row is None:
                continue
            if entry is not None and entry[2] is public:
                if (entry[0] is row or entry[0] == row) and entry[1] == enabled and now <= entry[3]:
                    out.append(entry[4])
                    continue
                head, config_text = entry[5], entry[6]
            else:
                head = f'"site": {_json_text(site)}, "name": {_json_text(ep.name)}, "kind": {_json_text(ep.kind)}'
                config_text = json.dumps(public, ensure_ascii=True)
            text, valid_until = view_text(row, head, enabled, config_text, now)
            built.append((row.endpoint_id, (row, enabled, public, valid_until, text, head, config_text)))
            out.append(text)
        if built:
            with self._lock:
                self._entries.update(built)
        return out

    def forget(self, endpoint_ids: list[int]) -> None:
        """Drop the views of endpoints that were removed or replaced."""
        with self._lock:
            for endpoint_id in endpoint_ids:
                self._entries.pop(endpoint_id, None)
