"""The endpoint view cache of the sites listing: never shows what changed, nor `up` for stale data."""

from __future__ import annotations

import json

from fieldwatch.status import EndpointStatus, StatusBoard
from fieldwatch.views import ViewCache

_PUBLIC = {"name": "e", "kind": "icmp", "host": "127.0.0.1"}


def _board(last_data_at: float) -> StatusBoard:
    board = StatusBoard()
    board.register(EndpointStatus(endpoint_id=1, site="s", name="e", kind="icmp", state="up", since=900.0,
                                  last_data_at=last_data_at, fresh_within_s=22.0, generation=2))
    return board


def _get(cache: ViewCache, board: StatusBoard, now: float, enabled: bool = True) -> tuple[dict, str]:
    row = board.rows([1])[1]
    return cache.get(row, "s", "e", "icmp", enabled, _PUBLIC, now)


def test_unchanged_row_is_served_from_the_cache_and_matches_its_json() -> None:
    board, cache = _board(1000.0), ViewCache()
    view, text = _get(cache, board, 1001.0)
    again, text_again = _get(cache, board, 1002.0)
    assert again is view and text_again is text
    assert json.loads(text) == view
    assert view["state"] == "up" and view["last_data_at"] == "1970-01-01T00:16:40.000Z"


def test_new_data_rebuilds_the_view() -> None:
    board, cache = _board(1000.0), ViewCache()
    _get(cache, board, 1001.0)
    board.update(1, 2, last_data_at=1010.0)
    view, text = _get(cache, board, 1011.0)
    assert view["last_data_at"] == "1970-01-01T00:16:50.000Z" and "00:16:50.000Z" in text


def test_data_older_than_the_freshness_bound_is_shown_stale_though_the_row_did_not_change() -> None:
    board, cache = _board(1000.0), ViewCache()
    assert _get(cache, board, 1010.0)[0]["state"] == "up"
    view, text = _get(cache, board, 1023.0)  # 23 s > fresh_within_s
    assert view["state"] == "stale" and json.loads(text)["state"] == "stale"
    later = _get(cache, board, 1030.0)[0]
    assert later["state"] == "stale" and "30.0s ago" in later["reason"]  # the age keeps growing


def test_enabled_flag_and_config_changes_rebuild_the_view() -> None:
    board, cache = _board(1000.0), ViewCache()
    view = _get(cache, board, 1001.0)[0]
    assert _get(cache, board, 1001.0, enabled=False)[0]["enabled"] is False
    row = board.rows([1])[1]
    other = dict(_PUBLIC, host="127.0.0.2")
    assert cache.get(row, "s", "e", "icmp", True, other, 1001.0)[0]["config"]["host"] == "127.0.0.2"
    assert view["config"]["host"] == "127.0.0.1"
