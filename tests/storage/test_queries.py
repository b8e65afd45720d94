"""The read side: SPEC §6 shapes, freshness, filters and keyset pagination."""

from __future__ import annotations

import json

import peewee
import pytest

from fieldwatch.errors import StorageError
from fieldwatch.storage import queries
from fieldwatch.storage import writes as w
from fieldwatch.timeutil import to_rfc3339
from tests.storage.storage_helpers import ALL_RAW, create_site, write

OPCUA = json.dumps({"url": "opc.tcp://x", "stale_after_s": 30, "password": "hunter2", "security": {"token": "t"}})


@pytest.fixture
def ids(db: peewee.Database) -> dict[str, int]:
    a = create_site(db, "a", ("plc", "opcua", OPCUA), ("router", "icmp", '{"interval_s": 10}'))
    b = create_site(db, "b", ("broker", "mqtt", "{}"))
    return {**a, **b}


def test_endpoint_has_its_latest_readings(db: peewee.Database, ids: dict[str, int]) -> None:
    e = ids["plc"]
    write(
        db,
        [
            w.ReadingRecord(
                endpoint_id=e,
                generation=0,
                name=name,
                value_num=float(i),
                value_text=None,
                quality="good",
                source_time=1.0,
                received_at=float(i),
            )
            for i in range(5)
            for name in ("level", "pump", "temp")
        ],
    )
    write(
        db,
        [
            w.ReadingRecord(
                endpoint_id=e,
                generation=0,
                name="mode",
                value_num=None,
                value_text='{"auto": true}',
                quality="good",
                source_time=None,
                received_at=9.0,
            ),
            w.ReadingRecord(
                endpoint_id=e,
                generation=0,
                name="label",
                value_num=None,
                value_text="plain text",
                quality="good",
                source_time=None,
                received_at=9.0,
            ),
        ],
    )
    latest = {r["name"]: r["value"] for r in queries.latest_readings(e)}
    assert latest == {"label": "plain text", "level": 4.0, "mode": {"auto": True}, "pump": 4.0, "temp": 4.0}
    assert len(queries.latest_readings(e, per_name=2)) == 8
    assert queries.latest_readings(ids["broker"]) == []


def test_events_pages_follow_and_filters(db: peewee.Database, ids: dict[str, int]) -> None:
    levels = ["debug", "info", "warning", "error"]
    write(
        db,
        [
            w.EventRecord(
                endpoint_id=ids["plc"] if i % 2 else ids["broker"],
                generation=1,
                time=float(i // 3),
                level=levels[i % 4],
                event="e",
                message=str(i),
            )
            for i in range(250)
        ],
    )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        items, cursor = queries.events(limit=100, cursor=cursor)
        seen.extend(item["message"] for item in items)
        pages += 1
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 250
    times = [int(m) // 3 for m in seen]
    assert times == sorted(times, reverse=True)  # newest first, ties on the same second kept apart
    first = queries.events(limit=1)[0][0]
    assert set(first) >= {"time", "site", "endpoint", "level", "event", "message", "generation", "id"}
    newer, nxt = queries.events(after_id=first["id"] - 3, limit=10)
    assert [e["id"] for e in newer] == [first["id"] - 2, first["id"] - 1, first["id"]] and nxt is None
    plc_errors = queries.events(site="a", endpoint="plc", level="warning", limit=1000)[0]
    assert plc_errors and all(e["endpoint"] == "plc" and e["level"] in ("warning", "error") for e in plc_errors)
    assert len(queries.events(since=80.0, limit=1000)[0]) == 10  # i // 3 >= 80: i in 240..249


@pytest.mark.parametrize("bad", [{"cursor": "garbage"}, {"limit": 0}, {"limit": 10_001}, {"level": "loud"}])
def test_bad_parameters_are_value_errors(db: peewee.Database, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        queries.events(**bad)  # type: ignore[arg-type]


def test_a_cursor_of_another_collection_is_refused(db: peewee.Database, ids: dict[str, int]) -> None:
    write(
        db,
        [
            w.ReadingRecord(
                endpoint_id=ids["plc"],
                generation=0,
                name="x",
                value_num=float(i),
                value_text=None,
                quality="good",
                source_time=None,
                received_at=float(i),
            )
            for i in range(3)
        ],
    )
    _, cursor = queries.readings(limit=1)
    assert cursor is not None
    with pytest.raises(ValueError):
        queries.events(cursor=cursor)


def test_readings_page_by_reading_time(db: peewee.Database, ids: dict[str, int]) -> None:
    write(
        db,
        [
            w.ReadingRecord(
                endpoint_id=ids["plc"],
                generation=0,
                name="level",
                value_num=float(i),
                value_text=None,
                quality="good",
                source_time=100.0 + i,
                received_at=float(i),
                device=None,
            )
            for i in range(30)
        ]
        + [
            w.ReadingRecord(
                endpoint_id=ids["broker"],
                generation=0,
                name="t",
                value_num=1.5,
                value_text=None,
                quality="good",
                source_time=None,
                received_at=50.0,
                device="dev1",
            )
        ],
    )
    items, cursor = queries.readings(site="a", endpoint="plc", name="level", limit=20)
    assert [r["value"] for r in items] == [float(i) for i in range(29, 9, -1)]
    rest, last = queries.readings(site="a", endpoint="plc", name="level", limit=20, cursor=cursor)
    assert [r["value"] for r in rest] == [float(i) for i in range(9, -1, -1)] and last is None
    reading = items[0]
    assert reading == {
        "site": "a",
        "endpoint": "plc",
        "name": "level",
        "device": None,
        "value": 29.0,
        "quality": "good",
        "source_time": to_rfc3339(129.0),
        "received_at": to_rfc3339(29.0),
    }
    assert queries.readings(endpoint="broker")[0][0]["device"] == "dev1"
    # since/until filter (and pages sort by) the reading's time: its source time when it has one
    assert queries.readings(since=125.0, limit=100)[0][-1]["value"] == 25.0
    assert [r["value"] for r in queries.readings(since=125.0, until=127.0, limit=100)[0]] == [26.0, 25.0]
    assert queries.readings(site="nope") == ([], None)


def test_alerts_topics_devices_parse_errors(db: peewee.Database, ids: dict[str, int]) -> None:
    e = ids["broker"]
    write(
        db,
        [
            w.AlertOpen(
                endpoint_id=e, generation=0, condition="down", severity="critical", message="broker down", time=1.0
            ),
            w.AlertOpen(
                endpoint_id=e,
                generation=0,
                condition="offline",
                severity="warning",
                message="dev1 offline",
                time=2.0,
                subject="dev1",
            ),
            w.TopicSeen(endpoint_id=e, generation=0, topic="s/dev1/t", time=3.0, count=4, is_processable=True),
            w.DeviceSeen(endpoint_id=e, generation=0, device="dev1", time=3.0, online=True),
            w.ParseErrorRecord(
                endpoint_id=e, generation=0, time=4.0, topic="s/dev1/t", parser="json", error="bad json", sample="{{"
            ),
        ],
    )
    write(db, [w.AlertResolve(endpoint_id=e, generation=0, condition="down", time=5.0)])
    all_alerts = queries.alerts()[0]
    assert [a["condition"] for a in all_alerts] == ["offline", "down"]
    active = queries.alerts(active=True)[0]
    assert len(active) == 1 and active[0]["active"] is True and active[0]["site"] == "b"
    assert queries.alerts(active=False)[0][0]["resolved_at"] == to_rfc3339(5.0)
    assert queries.active_alert_counts() == {("b", "broker", "offline"): 1}
    topic = queries.topics(site="b")[0][0]
    assert (topic["topic"], topic["count"], topic["is_processable"], topic["is_active"]) == ("s/dev1/t", 4, True, True)
    assert queries.devices(e) == [
        {"name": "dev1", "first_seen": to_rfc3339(3.0), "last_seen": to_rfc3339(3.0), "online": True}
    ]
    error = queries.parse_errors(endpoint="broker")[0][0]
    assert (error["parser"], error["error"], error["sample"], error["site"]) == ("json", "bad json", "{{", "b")


def test_a_failing_database_is_a_storage_error(db: peewee.Database, ids: dict[str, int]) -> None:
    db.execute_sql("ALTER TABLE series RENAME TO series_gone")
    try:
        with pytest.raises(StorageError):
            queries.readings()
    finally:
        db.execute_sql("ALTER TABLE series_gone RENAME TO series")
    assert queries.readings() == ([], None)  # the next call works again


def test_probe_rows_read_as_two_readings_and_pages_never_split_or_repeat(
    db: peewee.Database, ids: dict[str, int]
) -> None:
    probes = [
        w.ReadingRecord(endpoint_id=ids["router"], generation=0, name="rtt", value_num=None if i % 4 == 0 else i / 1000,
                        source_time=1000.0 + i, received_at=1000.0 + i + 0.01, aux_name="packet_loss",
                        aux_num=1.0 if i % 4 == 0 else 0.0)
        for i in range(20)
    ]  # fmt: skip
    others = [
        w.ReadingRecord(endpoint_id=ids["plc"], generation=0, name="level", value_num=float(i), received_at=1000.5 + i)
        for i in range(20)
    ]
    write(db, probes + others)
    assert db.execute_sql(f"SELECT COUNT(*) FROM {ALL_RAW} r").fetchone()[0] == 40  # one row a probe
    everything, nxt = queries.readings(limit=1000)
    assert nxt is None and len(everything) == 20 + 15 + 20  # loss always, rtt when something answered
    times = [r["source_time"] or r["received_at"] for r in everything]
    assert times == sorted(times, reverse=True)
    for limit in (1, 2, 7):
        paged, cursor = [], None
        while True:
            items, cursor = queries.readings(limit=limit, cursor=cursor)
            paged += items
            if cursor is None:
                break
        assert paged == everything, limit
    loss = queries.readings(site="a", endpoint="router", name="packet_loss", limit=1000)[0]
    assert [r["value"] for r in loss] == [1.0 if i % 4 == 0 else 0.0 for i in range(19, -1, -1)]
    rtt = queries.readings(site="a", endpoint="router", name="rtt", limit=1000)[0]
    assert len(rtt) == 15 and all(r["value"] is not None for r in rtt)
    latest = {r["name"]: r["value"] for r in queries.latest_readings(ids["router"])}
    assert latest == {"rtt": 0.019, "packet_loss": 0.0}
    buckets = queries.readings(site="a", endpoint="router", name="packet_loss", step=60, since=960, until=1080)[0]
    assert [(b["count"], b["avg"]) for b in buckets] == [(20, 0.25)]
