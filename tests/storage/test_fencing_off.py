"""Outside a cluster, fencing costs nothing: no lease check, no epoch column written."""

from __future__ import annotations

from pathlib import Path

from fieldwatch.storage import sites
from fieldwatch.storage import writes as w
from fieldwatch.storage.batch import apply_writes
from fieldwatch.storage.commands import EndpointSpec, SiteSpec, SyncConfig
from fieldwatch.storage.db import write_transaction
from fieldwatch.storage.gateway import StorageGateway
from fieldwatch.storage.testing import temporary_database


def test_a_single_instance_runs_no_fencing_statement(tmp_path: Path) -> None:
    assert StorageGateway().fence is None  # the writer calls split_fenced only with a fence
    with temporary_database("sqlite", tmp_path) as db:
        with write_transaction(db):
            stored = sites.execute(SyncConfig([SiteSpec("s", True, "{}", (EndpointSpec("e", "icmp", True, "{}"),))]), 0)
        endpoint_id = stored[0].endpoints[0].id
        statements: list[str] = []
        db.connection().set_trace_callback(statements.append)
        batch = [
            w.GenerationStarted(endpoint_id=endpoint_id, generation=1),
            w.StateChange(endpoint_id=endpoint_id, generation=1, state="up", since=1.0, reason="ok", down_since=None,
                          last_data_at=1.0),
            w.Touch(endpoint_id=endpoint_id, generation=1, last_data_at=2.0),
            w.ReadingRecord(endpoint_id=endpoint_id, generation=1, name="v", value_num=1.0, received_at=2.0),
        ]  # fmt: skip
        with write_transaction(db):
            apply_writes(db, batch, {endpoint_id: ("s", "e")}, 3.0)
        db.connection().set_trace_callback(None)
        assert any("UPDATE endpoint" in s for s in statements), statements  # the trace saw the batch
        assert not [s for s in statements if "lease" in s.lower()]
        assert db.execute_sql("SELECT state, lease_epoch FROM endpoint").fetchone() == ("up", None)
