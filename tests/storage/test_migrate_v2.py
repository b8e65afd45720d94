"""Schema v1 -> v2 on a populated database: rows written by the v1 schema read back the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peewee
import pytest

from fieldwatch.errors import StorageError
from fieldwatch.storage import queries
from fieldwatch.storage.migrate_v2 import SchemaV2
from fieldwatch.storage.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from fieldwatch.storage.testing import temporary_database
from fieldwatch.timeutil import to_rfc3339
from tests.storage.storage_helpers import create_site

T0 = 1_764_000_000.0
_V1_INSERT = (
    "INSERT INTO reading (endpoint_id, name, device, value_num, value_text, quality, source_time, received_at, msg_key) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def v1_rows(ids: dict[str, int]) -> list[tuple[Any, ...]]:
    """What the previous release wrote: ICMP as two rows a probe, MQTT with keys, OPC UA text and quality."""
    rows: list[tuple[Any, ...]] = []
    for i in range(40):
        t = T0 + i
        rows.append((ids["router"], "packet_loss", None, 0.0 if i % 5 else 1.0, None, "Good", t, t + 0.002, None))
        if i % 5:
            rows.append((ids["router"], "rtt", None, 0.001 + i / 1e6, "min/avg/max = ...", "Good", t, t + 0.002, None))
        rows.append((ids["broker"], "temp", f"dev{i % 3}", 20.0 + i, None, "Good", None, t + 0.5, f"key{i}"))
        rows.append((ids["plc"], "level", None, float(i), None, "Good" if i % 7 else "Uncertain", t - 0.1, t, None))
    rows.append((ids["plc"], "mode", None, None, '{"auto": true}', "Good", None, T0 + 50, None))
    rows.append((ids["broker"], "temp", "dev0", 99.0, None, "Good", None, T0 + 0.5, None))  # same ms as key0's
    return rows


def expected(rows: list[tuple[Any, ...]], names: dict[int, tuple[str, str]]) -> list[tuple[Any, ...]]:
    """The v1 rows as the API shows them (rtt text aside: v2 keeps no derivable text)."""
    out = []
    for endpoint_id, name, device, num, _text, quality, source, received, _key in rows:
        site, endpoint = names[endpoint_id]
        value = num if num is not None else {"auto": True}
        out.append((site, endpoint, name, device, value, quality, to_rfc3339(source), to_rfc3339(received)))
    return sorted(out, key=repr)


def seen(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("site", "endpoint", "name", "device", "value", "quality", "source_time", "received_at")
    return sorted((tuple(item[k] for k in keys) for item in items), key=repr)


def populated_v1(db: peewee.Database) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    assert migrate(db, target=1) == 1
    ids = create_site(db, "s", ("router", "icmp", "{}"), ("broker", "mqtt", "{}"), ("plc", "opcua", "{}"))
    rows = v1_rows(ids)
    for row in rows:
        db.execute_sql(_V1_INSERT.format(p=db.param), row)
    return ids, rows


def check_migrated(db: peewee.Database, ids: dict[str, int], rows: list[tuple[Any, ...]]) -> None:
    names = {i: ("s", n) for n, i in ids.items()}
    items, nxt = queries.readings(limit=10_000)
    assert nxt is None
    assert seen(items) == expected(rows, names)
    assert db.execute_sql("SELECT COUNT(*) FROM reading_key").fetchone()[0] == 40
    # the rollups summarise exactly the copied numeric readings
    n_numeric = sum(1 for r in rows if r[3] is not None)
    assert db.execute_sql("SELECT SUM(n) FROM rollup_1m").fetchone()[0] == n_numeric
    assert db.execute_sql("SELECT SUM(n) FROM rollup_1h").fetchone()[0] == n_numeric
    assert "reading_v1" not in db.get_tables()
    assert db.execute_sql("SELECT COUNT(*) FROM reading").fetchone()[0] == len(rows)  # the view


def test_v1_rows_read_back_the_same_after_the_migration(backend: str, tmp_path: Path) -> None:
    with temporary_database(backend, tmp_path, migrated=False) as db:
        ids, rows = populated_v1(db)
        assert migrate(db) == LATEST_VERSION >= 2
        check_migrated(db, ids, rows)


def test_an_interrupted_migration_resumes_where_it_stopped(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = MIGRATIONS[1]
    assert isinstance(stage, SchemaV2)
    monkeypatch.setattr(stage, "chunk_rows", 25)
    calls = {"n": 0}
    real_step = SchemaV2.step

    def failing_step(self: SchemaV2, db: peewee.Database) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:  # two chunks committed, the third dies mid-way (after its inserts)
            real_step(self, db)
            raise peewee.OperationalError("disk I/O error (simulated crash)")
        return real_step(self, db)

    with temporary_database(backend, tmp_path, migrated=False) as db:
        ids, rows = populated_v1(db)
        monkeypatch.setattr(SchemaV2, "step", failing_step)
        with pytest.raises(StorageError, match="simulated crash"):
            migrate(db)
        assert schema_version(db) == 1
        progress = db.execute_sql("SELECT last_id FROM migration_progress").fetchone()[0]
        assert progress == 50  # two chunks of 25 v1 ids committed, the third rolled back
        assert db.execute_sql("SELECT COUNT(*) FROM reading_raw").fetchone()[0] > 0
        monkeypatch.setattr(SchemaV2, "step", real_step)
        assert migrate(db) == LATEST_VERSION
        check_migrated(db, ids, rows)  # nothing lost, nothing copied twice
