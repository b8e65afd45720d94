"""High availability (SPEC section 10): per-site leases on a shared PostgreSQL database."""

from __future__ import annotations

from fieldwatch.cluster.leases import LeaseManager, LeaseTimings, SiteCallback
from fieldwatch.cluster.placement import LeaseRow, Plan, plan_scan, preferred_owner
from fieldwatch.cluster.schema import INSTANCE_TABLE, LEASE_TABLE, ensure_schema, fenced, fenced_sites

__all__ = [
    "INSTANCE_TABLE",
    "LEASE_TABLE",
    "LeaseManager",
    "LeaseRow",
    "LeaseTimings",
    "Plan",
    "SiteCallback",
    "ensure_schema",
    "fenced",
    "fenced_sites",
    "plan_scan",
    "preferred_owner",
]
