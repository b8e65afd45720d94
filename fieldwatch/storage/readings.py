"""Reading stored readings back: raw pages, rollup buckets (`step`), the latest per name.

Raw rows (`storage.raw`) come back in the SPEC §6 reading shape; a row with an `aux`
value (a ping probe) reads as two readings, the series' own (`rtt`, left out when it
has no value) and its companion's (`packet_loss`). Pages are newest first by the
reading's time (its source time when it has one) with keyset cursors. With `step`,
the answer is rollup buckets from the coarsest tier whose width divides `step`: the
tiers summarise exactly the same raw readings, so the answer is the same from any
tier that covers the range, and the coarsest reads the fewest rows; buckets the writer
still keeps open (at/after the tier's mark, `rollup_state`) come from the finer sources.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import peewee

from fieldwatch.storage.db import database_proxy, is_sqlite
from fieldwatch.storage.paging import Page, check_limit, decode_cursor, encode_cursor, read_errors, reading_value, rfc
from fieldwatch.storage.recent import RAW_COLUMNS, RECENT
from fieldwatch.storage.rollup_state import read_marks
from fieldwatch.storage.rollups import TIERS, Tier, partials_sql
from fieldwatch.storage.sqlbits import int_list

__all__ = ["readings", "latest_readings", "STEP_UNIT_S"]

#: `step` must be a positive multiple of this many seconds.
STEP_UNIT_S = 60

_RAW_CHUNK = 500
_FIRST_WINDOW_MS = 10_000
_RAW_COLUMNS = RAW_COLUMNS
_PRIMARY, _AUX = 1, 0


@dataclass(frozen=True, slots=True)
class _Series:
    id: int
    site: str
    endpoint: str
    name: str
    device: str | None
    aux_id: int | None
    aux_name: str | None
    parts: frozenset[int]  # which of the row's readings this query wants


def _db() -> peewee.Database:
    db = database_proxy.obj
    assert isinstance(db, peewee.Database)
    return db


def _series(
    db: peewee.Database, site: str | None, endpoint: str | None, name: str | None, device: str | None
) -> dict[int, _Series]:
    """The series matching the filters; a name matches a series' own readings or its companion's."""
    p = db.param
    where, params = [], []
    for column, value in (("si.name", site), ("e.name", endpoint), ("s.device", device)):
        if value is not None:
            where.append(f"{column} = {p}")
            params.append(value)
    if name is not None:
        where.append(f"(s.name = {p} OR a.name = {p})")
        params += [name, name]
    sql = (
        "SELECT s.id, si.name, e.name, s.name, s.device, s.aux_id, a.name FROM series s "
        "JOIN endpoint e ON e.id = s.endpoint_id JOIN site si ON si.id = e.site_id "
        "LEFT JOIN series a ON a.id = s.aux_id" + (" WHERE " + " AND ".join(where) if where else "")
    )
    out: dict[int, _Series] = {}
    for sid, site_name, ep, sname, dev, aux_id, aux_name in db.execute_sql(sql, params).fetchall():
        parts = {_PRIMARY, _AUX} if name is None else set()
        if name is not None and sname == name:
            parts.add(_PRIMARY)
        if name is not None and aux_name == name:
            parts.add(_AUX)
        if aux_id is None:
            parts.discard(_AUX)
        out[sid] = _Series(sid, site_name, ep, sname, dev or None, aux_id, aux_name, frozenset(parts))
    return out


def _items(row: tuple[Any, ...], s: _Series) -> list[tuple[int, dict[str, Any]]]:
    """The readings of one raw row (part, item), primary first."""
    _sid, t, _seq, value, aux, lag, quality, text = row
    source = None if lag is None else rfc(t / 1000.0)
    received = rfc((t + (lag or 0)) / 1000.0)
    base = {"site": s.site, "endpoint": s.endpoint, "device": s.device, "quality": quality or "Good"}
    out = []
    if _PRIMARY in s.parts and (s.aux_id is None or value is not None or text is not None):
        item = {**base, "name": s.name, "value": reading_value(value, text)}
        out.append((_PRIMARY, {**item, "source_time": source, "received_at": received}))
    if _AUX in s.parts and aux is not None:
        item = {**base, "name": s.aux_name, "value": reading_value(aux, None)}
        out.append((_AUX, {**item, "source_time": source, "received_at": received}))
    return out


def _raw_select(db: peewee.Database, where: str, tail: str = "") -> str:
    """`SELECT <raw columns> ... WHERE where tail` over reading_raw and, on SQLite, the rows
    staged in reading_recent (a compound SELECT: an ORDER BY in `tail` merges both, each in
    its own order, and a LIMIT stops the merge early)."""
    sql = f"SELECT {_RAW_COLUMNS} FROM reading_raw WHERE {where}"
    if is_sqlite(db):
        sql += f" UNION ALL SELECT {_RAW_COLUMNS} FROM {RECENT} WHERE {where}"
    return f"{sql} {tail}" if tail else sql


def _staged_extreme(db: peewee.Database, fn: str, sids: list[int], found: Any) -> Any:
    """`found` (MIN or MAX of t over reading_raw) combined with the staged rows' (SQLite)."""
    if not is_sqlite(db):
        return found
    row = db.execute_sql(f"SELECT {fn}(t) FROM {RECENT} WHERE series_id IN {int_list(sids)}").fetchone()
    staged = None if row is None else row[0]
    if staged is None or found is None:
        return found if staged is None else staged
    return min(found, staged) if fn == "MIN" else max(found, staged)


def _staged_partials(db: peewee.Database, column: str, ids: str, lo: int, hi: int, width: int) -> list[tuple[Any, ...]]:
    """`partials_sql` rows (sid, b, mn, mx, sm, cnt, lt, lst) of the rows staged in
    reading_recent (SQLite): one grouped scan and one for the newest value of each bucket
    (a correlated lookup per bucket would scan the unindexed table once per bucket)."""
    c, width_ms = column, width * 1000
    where = f"series_id IN {ids} AND t >= {lo * 1000} AND t < {hi * 1000} AND {c} - {c} = 0"
    grouped = db.execute_sql(
        f"SELECT series_id, (t / {width_ms}) * {width} AS b, MIN({c}), MAX({c}), SUM({c}), COUNT(*), MAX(t) "
        f"FROM {RECENT} WHERE {where} GROUP BY series_id, b"
    ).fetchall()
    if not grouped:
        return []
    newest = db.execute_sql(
        f"SELECT series_id, b, v FROM (SELECT series_id, (t / {width_ms}) * {width} AS b, {c} AS v, "
        f"ROW_NUMBER() OVER (PARTITION BY series_id, (t / {width_ms}) ORDER BY t DESC, seq DESC) AS n "
        f"FROM {RECENT} WHERE {where}) WHERE n = 1"
    ).fetchall()
    last = {(int(sid), int(b)): v for sid, b, v in newest}
    return [(*r, last[(int(r[0]), int(r[1]))]) for r in grouped]


def _with_staged(stored: list[tuple[Any, ...]], staged: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Partials of reading_raw and of the staged rows merged per (series, bucket). At one
    millisecond a staged row is the later stored (its seq is higher): it is the last value."""
    if not staged:
        return stored
    out = {(int(r[0]), int(r[1])): list(r) for r in stored}
    for sid, b, mn, mx, sm, cnt, lt, lst in staged:
        got = out.get((int(sid), int(b)))
        if got is None:
            out[(int(sid), int(b))] = [sid, b, mn, mx, sm, cnt, lt, lst]
            continue
        got[2], got[3], got[4], got[5] = min(got[2], mn), max(got[3], mx), got[4] + sm, int(got[5]) + int(cnt)
        if int(lt) >= int(got[6]):
            got[6], got[7] = lt, lst
    return [tuple(v) for v in out.values()]


def _pack(sid: int, seq: int, part: int) -> int:
    return (sid << 32) | (seq << 1) | part


def _unpack(packed: int) -> tuple[int, int, int]:
    if packed < 0:
        raise ValueError("not a readings cursor")
    return packed >> 32, (packed & 0xFFFFFFFF) >> 1, packed & 1


def _raw_query(
    db: peewee.Database, sids: list[int], lo: int | None, hi: int | None, key: tuple[int, int, int] | None
) -> list[tuple[Any, ...]]:
    """Up to _RAW_CHUNK rows with lo <= t < hi and (t, series_id, seq) < key, newest first."""
    where = [f"series_id = {sids[0]}" if len(sids) == 1 else f"series_id IN {int_list(sids)}"]
    if lo is not None:
        where.append(f"t >= {int(lo)}")
    if hi is not None:
        where.append(f"t < {int(hi)}")
    if key is not None:
        kt, ks, kq = (int(k) for k in key)
        where.append(f"t <= {kt} AND (t, series_id, seq) < ({kt}, {ks}, {kq})")
    sql = _raw_select(db, " AND ".join(where), f"ORDER BY t DESC, series_id DESC, seq DESC LIMIT {_RAW_CHUNK}")
    return [tuple(r) for r in db.execute_sql(sql).fetchall()]


def _raw_rows(
    db: peewee.Database, sids: list[int], since: int | None, until: int | None, key: tuple[int, int, int] | None
) -> Iterator[tuple[Any, ...]]:
    """Rows newest first. Several series are read through a widening time window, so
    a page costs the rows near its time, not a sort of the whole range."""
    if len(sids) == 1:
        while True:
            rows = _raw_query(db, sids, since, until, key)
            yield from rows
            if len(rows) < _RAW_CHUNK:
                return
            key = rows[-1][1], rows[-1][0], rows[-1][2]
    row = db.execute_sql(
        f"SELECT MIN((SELECT MIN(t) FROM reading_raw r WHERE r.series_id = s.id)) FROM series s WHERE s.id IN {int_list(sids)}"
    ).fetchone()
    oldest = _staged_extreme(db, "MIN", sids, None if row is None else row[0])
    if oldest is None:
        return
    floor = max(int(oldest), since) if since is not None else int(oldest)
    top = until if until is not None else int(time.time() * 1000) + 86_400_000
    if key is not None:
        top = min(top, key[0] + 1)
    row = db.execute_sql(
        f"SELECT MAX((SELECT MAX(t) FROM reading_raw r WHERE r.series_id = s.id)) FROM series s WHERE s.id IN {int_list(sids)}"
    ).fetchone()
    newest = _staged_extreme(db, "MAX", sids, None if row is None else row[0])
    if newest is not None:
        top = min(top, int(newest) + 1)
    width = _FIRST_WINDOW_MS
    while top > floor:
        lo = max(floor, top - width)
        while True:
            rows = _raw_query(db, sids, lo, top, key)
            yield from rows
            if len(rows) < _RAW_CHUNK:
                break
            key = rows[-1][1], rows[-1][0], rows[-1][2]
        top, width = lo, width * 8


def _raw_page(
    db: peewee.Database,
    series: dict[int, _Series],
    since: float | None,
    until: float | None,
    limit: int,
    cursor: str | None,
) -> Page:
    key: tuple[int, int, int] | None = None
    pending: list[tuple[tuple[int, int, int, int], dict[str, Any]]] = []
    if cursor:
        t, packed = decode_cursor("readings", cursor)
        sid, seq, part = _unpack(packed)
        key = (int(t), sid, seq)
        if part == _PRIMARY and sid in series:  # the companion reading of that row is still due
            row = db.execute_sql(_raw_select(db, f"series_id = {sid} AND t = {int(t)} AND seq = {seq}")).fetchone()
            if row is not None:
                pending += [((int(t), sid, seq, p), i) for p, i in _items(tuple(row), series[sid]) if p < part]
    since_ms = None if since is None else int(since * 1000)
    until_ms = None if until is None else int(until * 1000)
    for row in _raw_rows(db, sorted(series), since_ms, until_ms, key):
        if len(pending) > limit:
            break
        pending += [((row[1], row[0], row[2], p), i) for p, i in _items(row, series[row[0]])]
    if len(pending) <= limit:
        return [i for _, i in pending], None
    last = pending[limit - 1][0]
    return [i for _, i in pending[:limit]], encode_cursor("readings", last[0], _pack(last[1], last[2], last[3]))


def _tier(step: int) -> Tier:
    """The coarsest tier whose buckets tile `step` exactly."""
    return [tier for tier in TIERS if step % tier.seconds == 0][-1]


def _bucket_page(
    db: peewee.Database,
    series: dict[int, _Series],
    step: int,
    since: float | None,
    until: float | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """Buckets of `step` seconds from the tier whose width divides it, newest first.

    Buckets before a tier's mark come from its table, the rest from the finer sources
    (`rollup_state`): 1-hour tier = rollup_1h below its mark, rollup_1m from there to the
    1-minute mark, raw rows after; 1-minute tier = rollup_1m below its mark, raw rows after.
    A bucket of `step` may draw on several sources; their aggregates are merged here.
    """
    tier = _tier(step)
    hi = int(until if until is not None else time.time() + step)
    lo = int(since) if since is not None else hi - step * limit
    lo = (lo // step) * step  # the bucket holding `since`, whole
    hi = -(-hi // tier.seconds) * tier.seconds  # the tier's buckets that start before `until`, whole
    wanted: list[int] = []
    raw_of: dict[str, dict[int, int]] = {"value": {}, "aux": {}}  # raw column -> row series -> answered series
    for s in series.values():
        if _PRIMARY in s.parts:
            wanted.append(s.id)
            raw_of["value"][s.id] = s.id
        if _AUX in s.parts and s.aux_id is not None:
            wanted.append(s.aux_id)
            raw_of["aux"][s.id] = s.aux_id
    if not wanted:
        return [], None
    names = _bucket_names(db, series, wanted)
    key: tuple[int, int] | None = None
    keyset = ""
    if cursor:
        kb, ks = decode_cursor("buckets", cursor)
        key = (int(kb), int(ks))
        keyset = f" WHERE (g.b < {key[0]} OR (g.b = {key[0]} AND g.series_id < {key[1]}))"
    in_ids = int_list(sorted(set(wanted)))
    with _snapshot(db):
        marks = read_marks(db)
        # (source, from, to): tiers finest first; each source covers [from, to) of the range
        m_tier = marks[TIERS.index(tier)]
        sources: list[tuple[str, int, int]] = [(tier.table, lo, min(hi, m_tier))]
        below = m_tier
        for finer, mark in reversed(list(zip(TIERS, marks, strict=True))[: TIERS.index(tier)]):
            sources.append((finer.table, max(lo, below), min(hi, mark)))
            below = max(below, mark)
        sources += [("value", max(lo, below), hi), ("aux", max(lo, below), hi)]
        merged: dict[tuple[int, int], list[Any]] = {}
        for source, a, z in sources:
            if a >= z:
                continue
            if source in raw_of:  # the raw part: a bucket or two per series, filtered here
                owners = raw_of[source]
                if not owners:
                    continue
                ids = int_list(sorted(owners))
                rows = [tuple(r) for r in db.execute_sql(partials_sql(source, ids, a, z, step)).fetchall()]
                if is_sqlite(db):
                    rows = _with_staged(rows, _staged_partials(db, source, ids, a, z, step))
                rows = [(owners[int(r[0])], *r[1:]) for r in rows]
                rows = [r for r in rows if key is None or (int(r[1]), r[0]) < key]
            else:
                tail = f"{keyset} ORDER BY g.b DESC, g.series_id DESC LIMIT {limit + 1}"
                sql = partials_sql(source, in_ids, a, z, step, tail)
                rows = [tuple(r) for r in db.execute_sql(sql).fetchall()]
            for sid, b, mn, mx, sm, cnt, lt, lst in rows:
                got = merged.get((int(b), int(sid)))
                if got is None:
                    merged[(int(b), int(sid))] = [mn, mx, sm, int(cnt), int(lt), lst]
                    continue
                got[0], got[1], got[2], got[3] = min(got[0], mn), max(got[1], mx), got[2] + sm, got[3] + int(cnt)
                if int(lt) > got[4]:
                    got[4], got[5] = int(lt), lst
    # each source gave its limit + 1 newest keys: the newest limit + 1 of them all are whole
    ordered = sorted(merged, reverse=True)[: limit + 1]
    items = []
    for b, sid in ordered[:limit]:
        mn, mx, sm, cnt, _lt, last = merged[(b, sid)]
        site, endpoint, name, device = names[sid]
        items.append(
            {
                "site": site,
                "endpoint": endpoint,
                "name": name,
                "device": device,
                "time": rfc(float(b)),
                "min": mn,
                "max": mx,
                "avg": sm / cnt if cnt else None,
                "count": int(cnt),
                "last": last,
            }
        )
    nxt = encode_cursor("buckets", ordered[limit - 1][0], ordered[limit - 1][1]) if len(ordered) > limit else None
    return items, nxt


@contextlib.contextmanager
def _snapshot(db: peewee.Database) -> Iterator[None]:
    """One snapshot for the statements of an answer (marks and the rows they describe);
    inside a caller's transaction, that one."""
    if db.in_transaction():
        yield
        return
    with db.atomic():
        if not is_sqlite(db):
            db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _bucket_names(
    db: peewee.Database, series: dict[int, _Series], ids: list[int]
) -> dict[int, tuple[str, str, str, str | None]]:
    names = {s.id: (s.site, s.endpoint, s.name, s.device) for s in series.values()}
    missing = [i for i in ids if i not in names]
    if missing:
        sql = (
            "SELECT s.id, si.name, e.name, s.name, s.device FROM series s JOIN endpoint e ON e.id = s.endpoint_id "
            f"JOIN site si ON si.id = e.site_id WHERE s.id IN {int_list(missing)}"
        )
        for sid, site, ep, name, dev in db.execute_sql(sql).fetchall():
            names[sid] = (site, ep, name, dev or None)
    return names


def readings(
    *,
    site: str | None = None,
    endpoint: str | None = None,
    name: str | None = None,
    device: str | None = None,
    since: float | None = None,
    until: float | None = None,
    step: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Stored readings newest first; with `step` (seconds, a multiple of 60) rollup buckets.

    `until` is exclusive. Without `since`, a `step` query answers the `limit` buckets
    before `until` (default: now).
    """
    check_limit(limit)
    if step is not None and (isinstance(step, bool) or step <= 0 or step % STEP_UNIT_S):
        raise ValueError(f"step must be a positive multiple of {STEP_UNIT_S} seconds, got {step!r}")
    if since is not None and until is not None and until <= since:
        return [], None
    db = _db()
    with read_errors():
        series = _series(db, site, endpoint, name, device)
        series = {sid: s for sid, s in series.items() if s.parts}
        if not series:
            return [], None
        if step is not None:
            return _bucket_page(db, series, step, since, until, limit, cursor)
        return _raw_page(db, series, since, until, limit, cursor)


def latest_readings(endpoint_id: int, per_name: int = 1) -> list[dict[str, Any]]:
    """The newest `per_name` readings of each reading name of an endpoint, by name."""
    db = _db()
    p = db.param
    found: dict[str, list[tuple[tuple[int, int, int], dict[str, Any]]]] = {}
    with read_errors():
        row = db.execute_sql(
            f"SELECT si.name, e.name FROM endpoint e JOIN site si ON si.id = e.site_id WHERE e.id = {p}", (endpoint_id,)
        ).fetchone()
        if row is None:
            return []
        series = _series(db, row[0], row[1], None, None)
        for sid, s in series.items():
            rows = db.execute_sql(
                _raw_select(db, f"series_id = {sid}", f"ORDER BY t DESC, seq DESC LIMIT {int(per_name)}")
            ).fetchall()
            for r in rows:
                for _part, item in _items(tuple(r), s):
                    found.setdefault(item["name"], []).append(((r[1], sid, r[2]), item))
    out: list[dict[str, Any]] = []
    for reading_name in sorted(found):
        newest = sorted(found[reading_name], key=lambda pair: pair[0], reverse=True)[:per_name]
        out += [item for _, item in newest]
    return out
