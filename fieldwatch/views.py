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
import heapq
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from fieldwatch import states
from fieldwatch.status import EndpointStatus, StatusRow, effective_state
from fieldwatch.timeutil import to_rfc3339

if TYPE_CHECKING:
    from fieldwatch.ledger import EndpointLedger

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


_Part = tuple[Any, int, bool, Any]
"""(endpoint config, endpoint id, enabled, public config) of one endpoint of a site, in order"""


@dataclass(slots=True, eq=False)
class _SiteTexts:
    """One site's endpoint views, in the order of its `parts` (those exact objects: a change of
    its endpoints, flags or config makes the controller build new ones, and this is rebuilt)."""

    parts: Sequence[_Part]
    index: dict[int, int]  # endpoint id -> position
    entries: list[_Entry | None]  # None: not on the board (left out of the listing)
    texts: list[str | None]
    missing: int = 0  # how many are None
    todo: dict[int, Any] = field(default_factory=dict)  # endpoint id -> its changed row, to apply
    #: (time, endpoint id): when to look again at a view whose shown state expires at a time
    #: (freshness rule); at most one live item per view (`expiry_of`), so it stays as long as
    #: the site however often its views are rebuilt (a view whose time moved on is pushed again
    #: with its new time when its item comes up)
    expiries: list[tuple[float, int]] = field(default_factory=list)
    expiry_of: dict[int, float] = field(default_factory=dict)  # endpoint id -> time of its live item
    every_time: set[int] = field(default_factory=set)  # views rebuilt at each listing (stale age)


def _entry_for(site: str, part: _Part, row: StatusRow, old: _Entry | None, now: float) -> _Entry:
    """The cached view of one endpoint: `old` as it is while nothing it shows changed, else rebuilt."""
    ep, _, enabled, public = part
    if old is not None and old[2] is public:
        if (old[0] is row or old[0] == row) and old[1] == enabled and now <= old[3]:
            return old
        head, config_text = old[5], old[6]
    else:
        head = f'"site": {_json_text(site)}, "name": {_json_text(ep.name)}, "kind": {_json_text(ep.kind)}'
        config_text = json.dumps(public, ensure_ascii=True)
    text, valid_until = view_text(row, head, enabled, config_text, now)
    return (row, enabled, public, valid_until, text, head, config_text)


class ViewCache:
    """endpoint_id -> the JSON text of its view and what it was built from; rebuilt on change.

    Shared by the HTTP threads: entries are read and replaced whole, under one lock
    acquisition per listing each way.

    `site_texts` (the sites listing) keeps each site's views in order and takes from the
    ledger only the rows that changed since the last listing (`EndpointLedger.changes_since`),
    so a listing costs what changed, not what is listed: at 10,000 endpoints, reading every
    row and entry again made up a third of a listing's CPU (issue 17).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._site_lock = threading.Lock()  # one listing applies the changes at a time
        self._sites: dict[str, _SiteTexts] = {}
        self._site_of: dict[int, str] = {}  # endpoint id -> the site whose views hold it
        self._version = -1  # the ledger's version the sites' views (with their `todo`) are at
        self._forgotten = False  # `forget` was called: the sites' views are dropped (under _lock)

    def site_texts(self, site: str, parts: Sequence[_Part], ledger: EndpointLedger, now: float) -> str:
        """The site's endpoint views as JSON texts joined by ", " (those not on the board left out)."""
        with self._site_lock:
            with self._lock:
                forgotten, self._forgotten = self._forgotten, False
            self._version, changed = ledger.changes_since(self._version)
            if changed is None or forgotten:  # behind the ledger's log, or endpoints went: all afresh
                self._sites.clear()
                self._site_of.clear()
                changed = {}
            sites, site_of = self._sites, self._site_of
            for endpoint_id, row in changed.items():
                owner = sites.get(site_of.get(endpoint_id, ""))
                if owner is not None:
                    owner.todo[endpoint_id] = row
            current = sites.get(site)
            if current is None or current.parts is not parts:
                current = self._build_site(site, parts, ledger, current, now)
            else:
                self._update_site(site, current, now)
            if current.missing:
                return ", ".join([t for t in current.texts if t is not None])
            return ", ".join(cast("list[str]", current.texts))

    def _build_site(
        self, site: str, parts: Sequence[_Part], ledger: EndpointLedger, old: _SiteTexts | None, now: float
    ) -> _SiteTexts:
        """Every view of the site from rows read now (reusing the old views that still hold)."""
        rows = ledger.rows([part[1] for part in parts])  # newer than any `todo` row
        before: dict[int, _Entry | None] = {}
        if old is not None:
            before = {eid: old.entries[i] for eid, i in old.index.items()}
            for eid in old.index:
                self._site_of.pop(eid, None)
        built = _SiteTexts(parts, {}, [], [])
        for i, (part, row) in enumerate(zip(parts, rows, strict=True)):
            endpoint_id = part[1]
            built.index[endpoint_id] = i
            self._site_of[endpoint_id] = site
            built.entries.append(None)
            built.texts.append(None)
            built.missing += 1
            self._put(site, built, i, endpoint_id, row, before.get(endpoint_id), now)
        self._sites[site] = built
        return built

    def _update_site(self, site: str, current: _SiteTexts, now: float) -> None:
        """Rebuild the views whose rows changed, whose shown state expired, or that show an age."""
        todo, current.todo = current.todo, {}
        entries, index = current.entries, current.index
        expiries, expiry_of = current.expiries, current.expiry_of
        while expiries and expiries[0][0] < now:
            at, endpoint_id = heapq.heappop(expiries)
            if expiry_of.get(endpoint_id) != at:
                continue  # not its live item (an earlier one replaced it)
            del expiry_of[endpoint_id]
            i = index.get(endpoint_id)
            entry = None if i is None else entries[i]
            if entry is None or endpoint_id in todo:
                continue  # gone, or rebuilt below anyway (which schedules it again)
            if entry[3] < now:
                todo[endpoint_id] = entry[0]  # its shown state expired: rebuilt below
            elif entry[3] != math.inf:
                self._expire_at(current, endpoint_id, entry[3])  # rebuilt since, with a later time
        for endpoint_id in current.every_time:
            entry = entries[index[endpoint_id]]
            if entry is not None and endpoint_id not in todo:
                todo[endpoint_id] = entry[0]
        for endpoint_id, row in todo.items():
            i = index.get(endpoint_id)
            if i is not None:
                self._put(site, current, i, endpoint_id, row, entries[i], now)

    @staticmethod
    def _put(
        site: str, current: _SiteTexts, i: int, endpoint_id: int, row: StatusRow | None, old: _Entry | None, now: float
    ) -> None:
        was_missing = current.texts[i] is None
        current.every_time.discard(endpoint_id)
        if row is None:
            current.entries[i] = current.texts[i] = None
            current.missing += not was_missing
            return
        entry = _entry_for(site, current.parts[i], row, old, now)
        current.entries[i] = entry
        current.texts[i] = entry[4]
        current.missing -= was_missing
        valid_until = entry[3]
        if valid_until == -math.inf:
            current.every_time.add(endpoint_id)
        elif valid_until != math.inf:
            ViewCache._expire_at(current, endpoint_id, valid_until)

    @staticmethod
    def _expire_at(current: _SiteTexts, endpoint_id: int, at: float) -> None:
        """Look at the view again at `at`, unless an item comes up for it before then anyway."""
        live = current.expiry_of.get(endpoint_id)
        if live is None or at < live:
            current.expiry_of[endpoint_id] = at
            heapq.heappush(current.expiries, (at, endpoint_id))

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
        for part, row, entry in zip(parts, rows, cached, strict=True):
            if row is None:
                continue
            new = _entry_for(site, part, row, entry, now)
            if new is not entry:
                built.append((row.endpoint_id, new))
            out.append(new[4])
        if built:
            with self._lock:
                self._entries.update(built)
        return out

    def forget(self, endpoint_ids: list[int]) -> None:
        """Drop the views of endpoints that were removed or replaced."""
        with self._lock:
            for endpoint_id in endpoint_ids:
                self._entries.pop(endpoint_id, None)
            self._forgotten = True  # (rare) every site's views are built afresh at its next listing:
            # not done here, so that a command never waits for a listing in progress
