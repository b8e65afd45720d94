"""Applying batches: folding per endpoint, upserts, screening by generation and deletion."""

from __future__ import annotations

import peewee

from fieldwatch.storage import writes as w
from fieldwatch.storage.batch import EndpointIndex
from tests.storage.storage_helpers import create_site, write


def row(db: peewee.Database, sql: str, *params: object) -> tuple[object, ...]:
    return tuple(db.execute_sql(sql.replace("?", db.param), params).fetchone())


def test_endpoint_columns_fold_in_submission_order(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    write(
        db,
        [
            w.GenerationStarted(e, 3),
            w.StateChange(e, 3, "up", 10.0, "connected", None, 10.0),
            w.Touch(e, 3, 11.0),
            w.Touch(e, 3, 12.0),
            w.Counters(e, 3, 2, 5),
        ],
        now=99.0,
    )
    assert row(
        db,
        "SELECT state, since, reason, last_data_at, generation, restarts, reconnects, updated_at "
        "FROM endpoint WHERE id = ?",
        e,
    ) == ("up", 10.0, "connected", 12.0, 3, 2, 5, 99.0)
    write(db, [w.Touch(e, 3, 13.0), w.StateChange(e, 3, "down", 14.0, "refused", 14.0, 13.0)])
    assert row(db, "SELECT state, down_since, last_data_at FROM endpoint WHERE id = ?", e) == ("down", 14.0, 13.0)


def test_topics_and_devices_are_upserted(db: peewee.Database) -> None:
    e = create_site(db, "s", ("broker", "mqtt", "{}"))["broker"]
    write(db, [w.TopicSeen(e, 0, "a/b", 5.0, 2, True), w.TopicSeen(e, 0, "a/b", 6.0, 3, True)])
    write(db, [w.TopicSeen(e, 0, "a/b", 4.0, 1, False)])  # late batch: first_seen moves back
    assert row(db, "SELECT first_seen, last_seen, count, is_processable, is_active FROM topic") in (
        (4.0, 6.0, 6, False, True),
        (4.0, 6.0, 6, 0, 1),
    )
    write(db, [w.DeviceSeen(e, 0, "d1", 10.0, True), w.DeviceSeen(e, 0, "d1", 11.0, True)])
    write(db, [w.DeviceSeen(e, 0, "d1", 20.0, False)])  # offline: last_seen stays at the last message
    assert row(db, "SELECT first_seen, last_seen, online FROM device") in ((10.0, 11.0, False), (10.0, 11.0, 0))
    write(db, [w.DeviceSeen(e, 0, "d2", 30.0, False)])  # known only as offline
    assert row(db, "SELECT first_seen, last_seen, online FROM device WHERE name = 'd2'") in (
        (30.0, 30.0, False),
        (30.0, 30.0, 0),
    )
    write(db, [w.DeviceSeen(e, 0, "d1", 25.0, True), w.DeviceSeen(e, 0, "d1", 26.0, False)])
    assert row(db, "SELECT last_seen, online FROM device WHERE name = 'd1'") in ((25.0, False), (25.0, 0))


def test_events_take_names_from_the_endpoint(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    write(
        db,
        [
            w.EventRecord(e, 1, 1.0, "error", "connect_failed", "refused", "ConnectionRefusedError", 3),
            w.EventRecord(None, 0, 2.0, "info", "started", "daemon started"),
        ],
    )
    rows = db.execute_sql("SELECT site_name, endpoint_name, endpoint_id, exc_type, attempt FROM event ORDER BY id")
    assert [tuple(r) for r in rows.fetchall()] == [
        ("s", "plc", e, "ConnectionRefusedError", 3),
        (None, None, None, None, None),
    ]


def test_parse_error_samples_are_truncated() -> None:
    record = w.ParseErrorRecord(1, 1, 1.0, "t", "json", "bad", "x" * 6000)
    assert len(record.sample) == w.SAMPLE_MAX_CHARS


def test_screen_splits_by_generation_and_existence(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    index = EndpointIndex()
    index.refresh(db)
    batch: list[w.Write] = [
        w.StateChange(e, 1, "up", 1.0, None, None, None),
        w.GenerationStarted(e, 2),
        w.StateChange(e, 1, "up", 2.0, None, None, None),  # the old actor, after its successor started
        w.StateChange(e, 2, "connecting", 3.0, None, None, None),
        w.Touch(e + 1000, 1, 1.0),  # no such endpoint
        w.EventRecord(None, 0, 1.0, "info", "x", ""),
    ]
    screened = index.screen(db, batch)
    assert screened.accepted == [batch[0], batch[1], batch[3], batch[5]]
    assert screened.stale == [batch[2]] and screened.orphans == [batch[4]]
    assert index.generations[e] == 0  # only a commit moves the index on
    again = index.screen(db, batch)  # a retried batch gets the same verdict
    assert again.accepted == screened.accepted
    index.committed(screened)
    assert index.generations[e] == 2


def test_nul_characters_are_stored_replaced_on_every_backend(db: peewee.Database) -> None:
    # A malformed MQTT payload sample, a text reading and an event message with NUL
    # (PostgreSQL text cannot hold it: found by the chaos soak as a writer crash loop).
    e = create_site(db, "s", ("broker", "mqtt", "{}"))["broker"]
    write(
        db,
        [
            w.ParseErrorRecord(e, 0, 1.0, "t/x", "json", "bad \x00 json", "ab\x00cd"),
            w.ReadingRecord(
                endpoint_id=e,
                generation=0,
                name="r",
                value_num=None,
                value_text="x\x00y",
                quality="Good",
                source_time=None,
                received_at=1.0,
            ),
            w.EventRecord(e, 0, 1.0, "warning", "parse_error", "payload \x00"),
        ],
    )
    cursor = db.execute_sql("SELECT sample, error FROM parse_error")
    assert cursor.fetchall() == [("ab\ufffdcd", "bad \ufffd json")]
    assert db.execute_sql("SELECT value_text FROM reading").fetchall() == [("x\ufffdy",)]
    assert db.execute_sql("SELECT message FROM event").fetchall() == [("payload \ufffd",)]
