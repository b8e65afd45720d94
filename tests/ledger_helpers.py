"""Ledgers for tests of readers (views, metrics, the status page) and of the ICMP hub.

`seed` puts an endpoint in a ledger exactly as a test describes it (times included),
which the ledger's own writers never do: it is for tests that check what readers make
of a given status, not for tests of how status is written (tests/test_ledger.py).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fieldwatch.ledger import EndpointLedger, Incarnation
from fieldwatch.status import EndpointStatus
from fieldwatch.storage.gateway import StorageGateway


def new_ledger(**kwargs: Any) -> EndpointLedger:
    """A ledger whose storage is a gateway without a writer (submits just queue)."""
    return EndpointLedger(StorageGateway(), **kwargs)


def seed(ledger: EndpointLedger, status: EndpointStatus) -> Incarnation:
    """Register `status` and set its fields as given; the incarnation of its generation (for writes)."""
    ledger.register(status.endpoint_id, site=status.site, name=status.name, kind=status.kind,
                    enabled=status.enabled, generation=status.generation)  # fmt: skip
    set_fields(
        ledger,
        status.endpoint_id,
        **{f.name: getattr(status, f.name) for f in fields(status) if f.name != "endpoint_id"},
    )
    return ledger.incarnation(status.endpoint_id, status.generation)


def set_fields(ledger: EndpointLedger, endpoint_id: int, **changes: Any) -> None:
    """Overwrite fields of an endpoint as readers will see them (test-only: no rule applies)."""
    with ledger._lock:  # noqa: SLF001 - a test fixture reaching into the ledger on purpose
        item = ledger._items[endpoint_id]  # noqa: SLF001
        for key, value in changes.items():
            setattr(item, key, value)
        ledger._refresh(item)  # noqa: SLF001
