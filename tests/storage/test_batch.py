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
            w.GenerationStarted(endpoint_id=e, generation=3),
            w.StateChange(
                endpoint_id=e,
                generation=3,
                state="up",
                since=10.0,
                reason="connected",
                down_since=None,
                last_data_at=10.0,
            ),
            w.Touch(endpoint_id=e, generation=3, last_data_at=11.0),
            w.Touch(endpoint_id=e, generation=3, last_data_at=12.0),
            w.Counters(endpoint_id=e, generation=3, restarts=2, reconnects=5),
        ],
        now=99.0,
    )
    assert row(
        db,
        "SELECT state, since, reason, last_data_at, generation, restarts, reconnects, updated_at "
        "FROM endpoint WHERE id = ?",
        e,
    ) == ("up", 10.0, "connected", 12.0, 3, 2, 5, 99.0)
    write(
        db,
        [
            w.Touch(endpoint_id=e, generation=3, last_data_at=13.0),
            w.StateChange(
                endpoint_id=e,
                generation=3,
                state="down",
                since=14.0,
                reason="refused",
                down_since=14.0,
                last_data_at=13.0,
            ),
        ],
    )
    assert row(db, "SELECT state, down_since, last_data_at FROM endpoint WHERE id = ?", e) == ("down", 14.0, 13.0)


def test_topics_and_devices_are_upserted(db: peewee.Database) -> None:
    e = create_site(db, "s", ("broker", "mqtt", "{}"))["broker"]
    write(
        db,
        [
            w.TopicSeen(endpoint_id=e, generation=0, topic="a/b", time=5.0, count=2, is_processable=True),
            w.TopicSeen(endpoint_id=e, generation=0, topic="a/b", time=6.0, count=3, is_processable=True),
        ],
    )
    write(
        db, [w.TopicSeen(endpoint_id=e, generation=0, topic="a/b", time=4.0, count=1, is_processable=False)]
    )  # late batch: first_seen moves back
    assert row(db, "SELECT first_seen, last_seen, count, is_processable, is_active FROM topic") in (
        (4.0, 6.0, 6, False, True),
        (4.0, 6.0, 6, 0, 1),
    )
    write(
        db,
        [
            w.DeviceSeen(endpoint_id=e, generation=0, device="d1", time=10.0, online=True),
            w.DeviceSeen(endpoint_id=e, generation=0, device="d1", time=11.0, online=True),
        ],
    )
    write(
        db, [w.DeviceSeen(endpoint_id=e, generation=0, device="d1", time=20.0, online=False)]
    )  # offline: last_seen stays at the last message
    assert row(db, "SELECT first_seen, last_seen, online FROM device") in ((10.0, 11.0, False), (10.0, 11.0, 0))
    write(
        db, [w.DeviceSeen(endpoint_id=e, generation=0, device="d2", time=30.0, online=False)]
    )  # known only as offline
    assert row(db, "SELECT first_seen, last_seen, online FROM device WHERE name = 'd2'") in (
        (30.0, 30.0, False),
        (30.0, 30.0, 0),
    )
    write(
        db,
        [
            w.DeviceSeen(endpoint_id=e, generation=0, device="d1", time=25.0, online=True),
            w.DeviceSeen(endpoint_id=e, generation=0, device="d1", time=26.0, online=False),
        ],
    )
    assert row(db, "SELECT last_seen, online FROM device WHERE name = 'd1'") in ((25.0, False), (25.0, 0))


def test_events_take_names_from_the_endpoint(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    write(
        db,
        [
            w.EventRecord(
                endpoint_id=e,
                generation=1,
                time=1.0,
                level="error",
                event="connect_failed",
                message="refused",
                exc_type="ConnectionRefusedError",
                attempt=3,
            ),
            w.EventRecord(
                endpoint_id=None, generation=0, time=2.0, level="info", event="started", message="daemon started"
            ),
        ],
    )
    rows = db.execute_sql("SELECT site_name, endpoint_name, endpoint_id, exc_type, attempt FROM event ORDER BY id")
    assert [tuple(r) for r in rows.fetchall()] == [
        ("s", "plc", e, "ConnectionRefusedError", 3),
        (None, None, None, None, None),
    ]


def test_parse_error_samples_are_truncated() -> None:
    record = w.ParseErrorRecord(
        endpoint_id=1, generation=1, time=1.0, topic="t", parser="json", error="bad", sample="x" * 6000
    )
    assert len(record.sample) == w.SAMPLE_MAX_CHARS


def test_screen_splits_by_generation_and_existence(db: peewee.Database) -> None:
    e = create_site(db, "s", ("plc", "opcua", "{}"))["plc"]
    index = EndpointIndex()
    index.refresh(db)
    batch: list[w.Write] = [
        w.StateChange(
            endpoint_id=e, generation=1, state="up", since=1.0, reason=None, down_since=None, last_data_at=None
        ),
        w.GenerationStarted(endpoint_id=e, generation=2),
        w.StateChange(
            endpoint_id=e, generation=1, state="up", since=2.0, reason=None, down_since=None, last_data_at=None
        ),  # the old actor, after its successor started
        w.StateChange(
            endpoint_id=e, generation=2, state="connecting", since=3.0, reason=None, down_since=None, last_data_at=None
        ),
        w.Touch(endpoint_id=e + 1000, generation=1, last_data_at=1.0),  # no such endpoint
        w.EventRecord(endpoint_id=None, generation=0, time=1.0, level="info", event="x", message=""),
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
            w.ParseErrorRecord(
                endpoint_id=e,
                generation=0,
                time=1.0,
                topic="t/x",
                parser="json",
                error="bad \x00 json",
                sample="ab\x00cd",
            ),
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
            w.EventRecord(
                endpoint_id=e, generation=0, time=1.0, level="warning", event="parse_error", message="payload \x00"
            ),
        ],
    )
    cursor = db.execute_sql("SELECT sample, error FROM parse_error")
    assert cursor.fetchall() == [("ab\ufffdcd", "bad \ufffd json")]
    assert db.execute_sql("SELECT value_text FROM reading").fetchall() == [("x\ufffdy",)]
    assert db.execute_sql("SELECT message FROM event").fetchall() == [("payload \ufffd",)]
