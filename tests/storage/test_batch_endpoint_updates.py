"""Endpoint updates of a batch go out as one statement per column set (issue 17): each row still gets its own values."""

from __future__ import annotations

import peewee

from fieldwatch.storage import writes as w
from tests.storage.storage_helpers import create_site, write


def test_many_endpoints_touched_and_changed_in_one_batch(db: peewee.Database) -> None:
    ids = create_site(db, "s", *((f"h{i}", "icmp", "{}") for i in range(50)))
    batch: list[w.Write] = [w.Touch(endpoint_id=ids[f"h{i}"], generation=0, last_data_at=1000.0 + i) for i in range(50)]
    batch.append(
        w.StateChange(
            endpoint_id=ids["h7"],
            generation=0,
            state="down",
            since=2000.0,
            reason="no reply",
            down_since=2000.0,
            last_data_at=1500.0,
        )
    )  # after its Touch
    batch.append(w.Counters(endpoint_id=ids["h9"], generation=0, restarts=4, reconnects=2))
    write(db, batch, now=3000.0)
    got = {
        r[0]: tuple(r[1:])
        for r in db.execute_sql("SELECT name, last_data_at, state, down_since, restarts, updated_at FROM endpoint")
    }
    for i in range(50):
        if i not in (7, 9):
            assert got[f"h{i}"][0] == 1000.0 + i and got[f"h{i}"][4] == 3000.0
    assert got["h7"][:3] == (1500.0, "down", 2000.0)  # the state change folded over the Touch
    assert got["h9"][0] == 1009.0 and got["h9"][3] == 4
