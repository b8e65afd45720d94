"""One active alert per (endpoint, condition, subject) across instances (SPEC section 10).

Two writers (two instances' persistence actors, each its own connection) open the same
alert at the same moment on PostgreSQL: the partial unique index `alert_active` and
the writer's `ON CONFLICT ... DO NOTHING` leave exactly one active row.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fieldwatch.storage import sites
from fieldwatch.storage import writes as w
from fieldwatch.storage.batch import apply_writes
from fieldwatch.storage.commands import EndpointSpec, SiteSpec, SyncConfig
from fieldwatch.storage.db import open_database, write_transaction
from fieldwatch.storage.testing import PG_ENV, pg_url, temporary_database
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(pg_url() is None, reason=f"{PG_ENV} is not set")


def test_two_writers_opening_the_same_alert_store_one(tmp_path: Path) -> None:
    with temporary_database("postgresql", tmp_path) as db:
        schema = db.fieldwatch_schema  # type: ignore[attr-defined]
        with write_transaction(db):
            stored = sites.execute(SyncConfig([SiteSpec("s", True, "{}", (EndpointSpec("e", "icmp", True, "{}"),))]), 0)
        endpoint_id = stored[0].endpoints[0].id
        a = open_database(pg_url() or "", schema=schema, application_name=schema)
        b = open_database(pg_url() or "", schema=schema, application_name=schema)

        def opened(at: float) -> w.AlertOpen:
            return w.AlertOpen(endpoint_id=endpoint_id, generation=1, condition="down", severity="critical",
                               message="down", time=at, subject="")  # fmt: skip

        done = threading.Event()
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with write_transaction(b):
                    apply_writes(b, [opened(2.0)], {}, 2.0)
            except BaseException as err:  # noqa: BLE001 - reported by the test
                errors.append(err)
            finally:
                done.set()

        try:
            with write_transaction(a):
                apply_writes(a, [opened(1.0)], {}, 1.0)
                thread = threading.Thread(target=second)
                thread.start()
                # the second writer's INSERT waits on the first's uncommitted row
                wait_for(
                    lambda: (
                        db.execute_sql(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                            (schema,),
                        ).fetchone()[0]
                        >= 1
                    ),
                    10,
                    what="the second writer to wait on the first",
                )
            assert done.wait(10)
            thread.join(5)
            assert errors == []
            rows = db.execute_sql(
                "SELECT triggered_at FROM alert WHERE endpoint_id = %s AND resolved_at IS NULL", (endpoint_id,)
            ).fetchall()
            assert [r[0] for r in rows] == [1.0]
            # resolved, it can open again: once
            with write_transaction(a):
                apply_writes(a, [w.AlertResolve(endpoint_id=endpoint_id, generation=1, condition="down", time=3.0)],
                             {}, 3.0)  # fmt: skip
            with write_transaction(b):
                apply_writes(b, [opened(4.0), opened(5.0)], {}, 5.0)
            count = db.execute_sql(
                "SELECT count(*) FROM alert WHERE endpoint_id = %s AND resolved_at IS NULL", (endpoint_id,)
            ).fetchone()[0]
            assert count == 1
        finally:
            a.close()
            b.close()
