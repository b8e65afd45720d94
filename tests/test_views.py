"""The endpoint view cache of the sites listing: never shows what changed, nor `up` for stale data."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fieldwatch import ledger as ledger_module
from fieldwatch.actors.icmp.stats import RttStats, fold_probe
from fieldwatch.ledger import EndpointLedger
from fieldwatch.status import EndpointStatus
from fieldwatch.timeutil import to_rfc3339
from fieldwatch.views import ViewCache, endpoint_view
from tests.ledger_helpers import new_ledger, seed, set_fields

_PUBLIC = {"name": "e", "kind": "icmp", "host": "127.0.0.1", "note": "ü \"quoted\""}


class _Ep:
    name, kind = "e", "icmp"


def _text(cache: ViewCache, row: Any, enabled: bool, public: dict[str, Any], now: float) -> str:
    (text,) = cache.texts("s", [(_Ep(), 1, enabled, public)], [row], now)
    return text


def _board(last_data_at: float | None) -> EndpointLedger:
    board = new_ledger()
    seed(board, EndpointStatus(endpoint_id=1, site="s", name="e", kind="icmp", state="up", since=900.0,
                               last_data_at=last_data_at, fresh_within_s=22.0, generation=2))
    return board


def _view(cache: ViewCache, board: EndpointLedger, now: float, enabled: bool = True,
          public: dict[str, Any] = _PUBLIC) -> dict[str, Any]:
    row = board.rows([1])[0]
    text = _text(cache, row, enabled, public, now)
    view = json.loads(text)
    assert view == endpoint_view(row, "s", "e", "icmp", enabled, public, now)  # the same shape as the dicts
    return view


def test_unchanged_row_is_served_from_the_cache() -> None:
    board, cache = _board(1000.0), ViewCache()
    row = board.rows([1])[0]
    first = _text(cache, row, True, _PUBLIC, 1001.0)
    assert _text(cache, board.rows([1])[0], True, _PUBLIC, 1002.0) is first
    view = json.loads(first)
    assert view["state"] == "up" and view["last_data_at"] == "1970-01-01T00:16:40.000Z"
    assert view["config"] == _PUBLIC and view["down_since"] is None


def test_new_data_rebuilds_the_view() -> None:
    board, cache = _board(1000.0), ViewCache()
    _view(cache, board, 1001.0)
    board.incarnation(1, 2).data(1010.0)
    assert _view(cache, board, 1011.0)["last_data_at"] == "1970-01-01T00:16:50.000Z"


def test_data_older_than_the_freshness_bound_is_shown_stale_though_the_row_did_not_change() -> None:
    board, cache = _board(1000.0), ViewCache()
    assert _view(cache, board, 1010.0)["state"] == "up"
    assert _view(cache, board, 1023.0)["state"] == "stale"  # 23 s > fresh_within_s
    later = _view(cache, board, 1030.0)
    assert later["state"] == "stale" and "30.0s ago" in later["reason"]  # the age keeps growing


def test_state_changes_and_no_data_yet() -> None:
    board, cache = _board(None), ViewCache()
    assert _view(cache, board, 1001.0)["state"] == "stale"  # up without data is never shown up
    set_fields(board, 1, state="down", since=1005.0, down_since=1005.0, reason="no reply from 127.0.0.1")
    view = _view(cache, board, 1006.0)
    assert view["state"] == "down" and view["down_since"] == "1970-01-01T00:16:45.000Z"
    assert view["reason"] == "no reply from 127.0.0.1"


def test_enabled_flag_and_config_changes_rebuild_the_view() -> None:
    board, cache = _board(1000.0), ViewCache()
    assert _view(cache, board, 1001.0)["enabled"] is True
    assert _view(cache, board, 1001.0, enabled=False)["enabled"] is False
    other = dict(_PUBLIC, host="127.0.0.2")
    assert _view(cache, board, 1001.0, public=other)["config"]["host"] == "127.0.0.2"


def test_ledger_rows_follow_every_write() -> None:
    board = _board(1000.0)
    assert board.rows([1, 99]) == [board.rows([1])[0], None]
    board.incarnation(1, 2).transition("down", "no reply")
    inc = board.begin(1, 4)
    assert inc.generation == 3
    inc.connected()  # the first connection is not a reconnect
    inc.transition("down", "no reply")
    down_since = board.rows([1])[0].down_since  # type: ignore[union-attr]
    inc.connected()
    inc.transition("down", "no reply")
    assert board.observe_many(fold_probe, [(1, 3, 1e10, ((0.001,), 0.0)), (1, 2, 1e10 + 1, ((), 1.0))]) == [1]
    row = board.rows([1])[0]
    assert row is not None and down_since is not None and row.down_since is not None and row.down_since > down_since
    assert (row.state, row.reason, row.generation, row.restarts, row.reconnects, row.last_data_at) == (
        "down", "no reply", 3, 4, 1, 1e10)  # gen 2's observation refused
    full = board.get(1)
    assert full is not None and isinstance(full.extra, RttStats) and (full.state, full.extra.count) == ("down", 1)
    board.remove(1)
    assert board.rows([1]) == [None]


_changes = st.lists(
    st.one_of(
        st.tuples(st.just("data"), st.floats(min_value=0.0, max_value=30.0)),  # a probe answered (after that many s)
        st.tuples(st.just("state"), st.sampled_from(["up", "down", "connecting", "faulty"])),
        st.tuples(st.just("enabled"), st.booleans()),
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=40.0)),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(changes=_changes)
def test_the_cached_text_is_always_the_view_built_afresh(changes: list[tuple[str, Any]]) -> None:
    """Whatever changes between listings (data, state, the flag, time passing), the cached text
    (reused, patched with the new time, or rebuilt) is the view built from scratch."""
    board, cache = _board(1000.0), ViewCache()
    now, enabled, at = 1001.0, True, 1000.0
    _view(cache, board, now, enabled)
    for kind, value in changes:
        if kind == "data":
            now += value
            at = now
            board.incarnation(1, 2).data(at)
        elif kind == "state":
            set_fields(board, 1, state=value, since=now, reason=f"now {value}")
        elif kind == "enabled":
            enabled = value
        else:
            now += value
        view = _view(cache, board, now, enabled)  # asserts it equals endpoint_view(...) at `now`
        assert view["last_data_at"] == to_rfc3339(at)


# -- a site's listing (`ViewCache.site_texts`): only what changed is read and rebuilt ----------------------

_site_changes = st.lists(
    st.one_of(
        st.tuples(st.just("data"), st.integers(0, 3), st.floats(min_value=0.0, max_value=30.0)),
        st.tuples(st.just("state"), st.integers(0, 3), st.sampled_from(["up", "down", "connecting", "faulty"])),
        st.tuples(st.just("enabled"), st.integers(0, 3), st.booleans()),  # the controller builds new parts
        st.tuples(st.just("config"), st.integers(0, 3), st.text(max_size=3)),  # likewise
        st.tuples(st.just("remove"), st.integers(0, 3), st.none()),  # off the board: left out
        st.tuples(st.just("register"), st.integers(0, 3), st.none()),  # back on it
        st.tuples(st.just("wait"), st.integers(0, 3), st.floats(min_value=0.0, max_value=40.0)),
        st.tuples(st.just("other site"), st.integers(0, 3), st.none()),  # another site listed in between
    ),
    max_size=30,
)


class _NamedEp:
    def __init__(self, name: str) -> None:
        self.name, self.kind = name, "icmp"


@settings(max_examples=200, deadline=None)
@given(changes=_site_changes)
def test_a_site_listing_is_always_the_views_built_afresh(changes: list[tuple[str, int, Any]]) -> None:
    """Whatever changes between a site's listings (data, states, flags, config, endpoints leaving
    and coming back, time passing, other sites listed), the listing equals every view built
    from scratch from the ledger's rows at that time, in the site's order."""
    board, cache = new_ledger(), ViewCache()
    ids = [11, 12, 13, 14]
    eps = [_NamedEp(f"e{i}") for i in range(4)]
    for k, endpoint_id in enumerate(ids):
        seed(board, EndpointStatus(endpoint_id=endpoint_id, site="s", name=f"e{k}", kind="icmp", state="up",
                                   since=900.0, last_data_at=1000.0, fresh_within_s=22.0, generation=2))
    seed(board, EndpointStatus(endpoint_id=99, site="t", name="x", kind="icmp", state="down", since=900.0))
    other_parts = [(_NamedEp("x"), 99, True, {"host": "t"})]
    enabled = [True] * 4
    public: list[dict[str, Any]] = [{"host": f"127.0.0.{k}"} for k in range(4)]
    parts = [(eps[k], ids[k], enabled[k], public[k]) for k in range(4)]
    now = 1001.0

    def check() -> None:
        text = cache.site_texts("s", parts, board, now)
        rows = board.rows(ids)
        expected = [endpoint_view(row, "s", eps[k].name, "icmp", enabled[k], public[k], now)
                    for k, row in enumerate(rows) if row is not None]
        assert json.loads(f"[{text}]") == expected

    check()
    for kind, k, value in changes:
        endpoint_id = ids[k]
        on_board = board.rows([endpoint_id])[0] is not None
        if kind == "data" and on_board:
            now += value
            board.observe_many(fold_probe, [(endpoint_id, 2, now, ((0.001,), 0.0))])
        elif kind == "state" and on_board:
            set_fields(board, endpoint_id, state=value, since=now, reason=f"now {value}")
        elif kind == "enabled":
            enabled[k] = value
            parts = [(eps[j], ids[j], enabled[j], public[j]) for j in range(4)]
        elif kind == "config":
            public[k] = {"host": f"127.0.0.{k}", "note": value}
            parts = [(eps[j], ids[j], enabled[j], public[j]) for j in range(4)]
        elif kind == "remove":
            board.remove(endpoint_id)
        elif kind == "register" and not on_board:
            seed(board, EndpointStatus(endpoint_id=endpoint_id, site="s", name=f"e{k}", kind="icmp",
                                       state="connecting", since=now, generation=2))
        elif kind == "wait":
            now += value
        elif kind == "other site":
            set_fields(board, 99, reason=f"at {now}")
            assert json.loads(cache.site_texts("t", other_parts, board, now))["reason"] == f"at {now}"
        check()


def test_a_site_listing_reads_only_the_rows_that_changed() -> None:
    """After the first listing, a listing takes from the ledger only what changed since the last."""
    board, cache = new_ledger(), ViewCache()
    for endpoint_id in range(1, 201):
        seed(board, EndpointStatus(endpoint_id=endpoint_id, site="s", name=f"e{endpoint_id}", kind="icmp",
                                   state="up", since=900.0, last_data_at=1000.0, fresh_within_s=22.0, generation=2))
    parts = [(_NamedEp(f"e{i}"), i, True, {"host": "h"}) for i in range(1, 201)]
    seen: list[int] = []
    changes_since = board.changes_since

    def counting(version: int) -> tuple[int, dict[int, Any] | None]:
        out = changes_since(version)
        seen.append(-1 if out[1] is None else len(out[1]))  # -1: every row read (the first listing)
        return out

    board.changes_since = counting  # type: ignore[method-assign]
    first = cache.site_texts("s", parts, board, 1001.0)
    assert seen == [-1]
    board.observe_many(fold_probe, [(7, 2, 1001.5, ((0.001,), 0.0)), (150, 2, 1001.6, ((0.002,), 0.0))])
    second = cache.site_texts("s", parts, board, 1002.0)
    assert seen[-1] == 2  # the two endpoints that answered, not all 200
    views = json.loads(f"[{second}]")
    assert views[6]["last_data_at"] == to_rfc3339(1001.5) and views[149]["last_data_at"] == to_rfc3339(1001.6)
    assert views[0] == json.loads(f"[{first}]")[0]  # unchanged
    assert cache.site_texts("s", parts, board, 1003.0) == second and seen[-1] == 0


def test_a_listing_behind_the_ledgers_change_log_reads_every_row(monkeypatch: Any) -> None:
    """When more changed than the ledger's log keeps, the next listing is built from every row."""
    monkeypatch.setattr(ledger_module, "_LOG_MAX", 8)
    board, cache = new_ledger(), ViewCache()
    for endpoint_id in (1, 2):
        seed(board, EndpointStatus(endpoint_id=endpoint_id, site="s", name=f"e{endpoint_id}", kind="icmp",
                                   state="up", since=900.0, last_data_at=1000.0, fresh_within_s=22.0, generation=2))
    parts = [(_NamedEp(f"e{i}"), i, True, {"host": "h"}) for i in (1, 2)]
    cache.site_texts("s", parts, board, 1001.0)
    for k in range(20):  # more changes than the log keeps
        board.observe_many(fold_probe, [(1 + k % 2, 2, 1001.0 + k / 10, ((0.001,), 0.0))])
    assert board.changes_since(0)[1] is None
    views = json.loads(f"[{cache.site_texts('s', parts, board, 1004.0)}]")
    assert [v["last_data_at"] for v in views] == [to_rfc3339(1002.8), to_rfc3339(1002.9)]


def test_removals_alone_keep_the_change_log_bounded(monkeypatch: Any) -> None:
    """Many endpoints removed with no other change in between (a site of thousands deleted): the
    log stays within its bound, and a listing behind it still reads every row."""
    monkeypatch.setattr(ledger_module, "_LOG_MAX", 8)
    board = new_ledger()
    for k in range(100):
        seed(board, EndpointStatus(endpoint_id=1000 + k, site="s", name=f"x{k}", kind="icmp", state="up",
                                   since=900.0, generation=1))
    for k in range(100):
        board.remove(1000 + k)
        assert len(board._log) <= 8
    current, rows = board.changes_since(0)
    assert rows is None and current > 0


def test_views_rebuilt_at_every_listing_do_not_pile_up_in_the_expiry_heap() -> None:
    """Endpoints answering between every two listings, for an hour of 2 s polls: the expiry heap
    keeps at most an item or two per view (it grew by one per rebuild: 9,000 items here)."""
    board, cache = new_ledger(), ViewCache()
    ids = [1, 2, 3, 4, 5]
    for endpoint_id in ids:
        seed(board, EndpointStatus(endpoint_id=endpoint_id, site="s", name=f"e{endpoint_id}", kind="icmp",
                                   state="up", since=900.0, last_data_at=1000.0, fresh_within_s=3600.0,
                                   generation=2))
    parts = [(_NamedEp(f"e{i}"), i, True, {"host": "h"}) for i in ids]
    now = 1000.0
    for _ in range(1800):
        now += 2.0
        board.observe_many(fold_probe, [(i, 2, now - 0.5, ((0.001,), 0.0)) for i in ids])
        views = json.loads(f"[{cache.site_texts('s', parts, board, now)}]")
    assert [v["last_data_at"] for v in views] == [to_rfc3339(now - 0.5)] * 5
    site = cache._sites["s"]  # noqa: SLF001 - the heap's size is what this test is about
    assert len(site.expiries) <= 2 * len(ids)
    # and an endpoint that stops answering is still shown stale once its data is too old
    for _ in range(1801):
        now += 2.0
        board.observe_many(fold_probe, [(i, 2, now - 0.5, ((0.001,), 0.0)) for i in ids[1:]])
        views = json.loads(f"[{cache.site_texts('s', parts, board, now)}]")
    assert [v["state"] for v in views] == ["stale", "up", "up", "up", "up"]
    assert len(site.expiries) <= 2 * len(ids)
