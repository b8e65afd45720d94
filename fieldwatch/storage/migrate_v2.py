"""Schema version 2: the compact readings schema, and the resumable copy of v1 readings.

v1 kept one `reading` row per value with its names as text and float times (125 bytes
a reading on SQLite). v2 keeps series ids, integer millisecond times and rollups (see
`raw` and `rollups`); `reading` becomes a view with the v1 columns for tools and SQL.

The copy runs in chunks, one transaction each, and records the last v1 id it copied
in `migration_progress`: a migration interrupted at any moment resumes where the last
committed chunk ended, and v1 rows are only dropped once every one is copied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import peewee

from fieldwatch.storage.db import is_sqlite
from fieldwatch.storage.raw import SeriesCache, insert_readings
from fieldwatch.storage.writes import ReadingRecord

__all__ = ["SchemaV2", "READING_VIEW"]

logger = logging.getLogger(__name__)

_TABLES = (
    """CREATE TABLE series (
        id {pk},
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        device TEXT NOT NULL DEFAULT '',
        aux_id INTEGER REFERENCES series (id) ON DELETE SET NULL,
        UNIQUE (endpoint_id, name, device))""",
    # clustered by series and time: no other index (a secondary index would double the size)
    """CREATE TABLE reading_raw (
        series_id INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
        t {bigint} NOT NULL,
        seq INTEGER NOT NULL,
        value {float},
        aux {float},
        lag {bigint},
        quality TEXT,
        text TEXT,
        PRIMARY KEY (series_id, t, seq)){norowid}""",
    """CREATE TABLE reading_key (
        endpoint_id INTEGER NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
        msg_key TEXT NOT NULL,
        t {bigint} NOT NULL,
        PRIMARY KEY (endpoint_id, msg_key)){norowid}""",
    "CREATE INDEX reading_key_t ON reading_key (t)",
    *(
        f"""CREATE TABLE {table} (
        series_id INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
        bucket {{bigint}} NOT NULL,
        v_min {{float}} NOT NULL,
        v_max {{float}} NOT NULL,
        v_sum {{float}} NOT NULL,
        n INTEGER NOT NULL,
        v_last {{float}} NOT NULL,
        last_t {{bigint}} NOT NULL,
        PRIMARY KEY (series_id, bucket)){{norowid}}"""
        for table in ("rollup_1m", "rollup_1h")
    ),
    "CREATE TABLE migration_progress (version INTEGER PRIMARY KEY, last_id {bigint} NOT NULL)",
)

_TIMES = (
    "CASE WHEN r.lag IS NULL THEN NULL ELSE r.t / 1000.0 END AS source_time, "
    "(r.t + COALESCE(r.lag, 0)) / 1000.0 AS received_at"
)

#: The v1 `reading` columns over the v2 tables (a row with a companion value reads as its two v1 rows).
READING_VIEW = (
    "CREATE VIEW reading AS "
    "SELECT s.endpoint_id AS endpoint_id, s.name AS name, NULLIF(s.device, '') AS device, "
    "r.value AS value_num, r.text AS value_text, COALESCE(r.quality, 'Good') AS quality, " + _TIMES + " "
    "FROM reading_raw r JOIN series s ON s.id = r.series_id "
    "WHERE s.aux_id IS NULL OR r.value IS NOT NULL OR r.text IS NOT NULL "
    "UNION ALL "
    "SELECT s.endpoint_id, a.name, NULLIF(a.device, ''), r.aux, NULL, COALESCE(r.quality, 'Good'), " + _TIMES + " "
    "FROM reading_raw r JOIN series s ON s.id = r.series_id JOIN series a ON a.id = s.aux_id "
    "WHERE r.aux IS NOT NULL"
)

_V1_COLUMNS = "id, endpoint_id, name, device, value_num, value_text, quality, source_time, received_at, msg_key"


class SchemaV2:
    """The staged v1 -> v2 migration: `prepare`, `step` until it says done, `finish`."""

    def __init__(self, chunk_rows: int = 20_000) -> None:
        self.chunk_rows = chunk_rows
        self._cache = SeriesCache()

    def reset(self) -> None:
        """Forget cached series ids and sequence numbers (a migration run starts or failed)."""
        self._cache = SeriesCache()

    def prepared(self, db: peewee.Database) -> bool:
        """Whether `prepare` already ran (an interrupted migration resumes)."""
        return "migration_progress" in db.get_tables()

    def prepare(self, db: peewee.Database, ddl: Callable[[peewee.Database, tuple[str, ...]], None]) -> None:
        """Move v1 readings aside (`reading_v1`) and create the v2 tables (`ddl` fills in type names)."""
        had_v1 = "reading" in db.get_tables()
        if had_v1:
            db.execute_sql("ALTER TABLE reading RENAME TO reading_v1")
        ddl(db, _TABLES)
        db.execute_sql(
            f"INSERT INTO migration_progress (version, last_id) VALUES (2, {db.param})", (0 if had_v1 else -1,)
        )

    def step(self, db: peewee.Database) -> bool:
        """Copy the next chunk of v1 readings; True once none is left."""
        p = db.param
        row = db.execute_sql("SELECT last_id FROM migration_progress WHERE version = 2").fetchone()
        last_id = int(row[0])
        if last_id < 0 or "reading_v1" not in db.get_tables():
            return True
        rows = db.execute_sql(
            f"SELECT {_V1_COLUMNS} FROM reading_v1 WHERE id > {p} ORDER BY id LIMIT {p}", (last_id, self.chunk_rows)
        ).fetchall()
        if not rows:
            return True
        records = [
            ReadingRecord(
                endpoint_id=r[1],
                generation=0,
                name=r[2],
                device=r[3],
                value_num=r[4],
                value_text=r[5],
                quality=r[6],
                source_time=r[7],
                received_at=r[8],
                msg_key=r[9],
            )
            for r in rows
        ]
        try:
            insert_readings(db, self._cache, records)
            db.execute_sql(f"UPDATE migration_progress SET last_id = {p} WHERE version = 2", (rows[-1][0],))
        except BaseException:
            self._cache.discard()
            raise
        self._cache.commit()  # `migrate` calls reset() if the transaction then fails to commit
        logger.info("schema v2: copied v1 readings up to id %d", rows[-1][0])
        return len(rows) < self.chunk_rows

    def finish(self, db: peewee.Database) -> None:
        """Drop the copied v1 table and create the `reading` view."""
        row = db.execute_sql("SELECT last_id FROM migration_progress WHERE version = 2").fetchone()
        had_v1 = row is not None and int(row[0]) > 0  # some v1 readings were copied
        if "reading_v1" in db.get_tables():
            db.execute_sql("DROP TABLE reading_v1")
        db.execute_sql(READING_VIEW)
        db.execute_sql("DELETE FROM migration_progress WHERE version = 2")
        if had_v1 and is_sqlite(db):
            logger.info("schema v2: v1 readings copied (run VACUUM off-line to give their pages back to the disk)")
