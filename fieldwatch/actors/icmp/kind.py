"""The icmp kind: ping a host; RTT histogram and packet loss in the metrics, RTT on the status page."""

from __future__ import annotations

import itertools
from typing import Any

from fieldwatch import states
from fieldwatch.actors.icmp.schema import SCHEMA, IcmpOptions
from fieldwatch.actors.icmp.stats import RTT_BUCKETS, RttStats
from fieldwatch.families import Family, Row, Samples
from fieldwatch.protocol import Kind

__all__ = ["KIND"]

_RTT_LE = tuple(repr(float(b)) for b in RTT_BUCKETS) + ("+Inf",)
_EMPTY = RttStats()


def _rtt(r: Row) -> Samples:
    s: RttStats = r.status.extra or _EMPTY  # no probe yet: zero buckets
    cumulative = (*itertools.accumulate(s.buckets), s.count)
    for le, count in zip(_RTT_LE, cumulative, strict=True):
        yield "fieldwatch_icmp_rtt_seconds_bucket", "le", le, float(count)
    yield "fieldwatch_icmp_rtt_seconds_count", None, "", float(s.count)
    yield "fieldwatch_icmp_rtt_seconds_sum", None, "", s.sum


def _loss(r: Row) -> Samples:
    s: RttStats | None = r.status.extra
    if s is not None and s.packet_loss is not None:
        yield "fieldwatch_icmp_packet_loss_ratio", None, "", s.packet_loss


def _rtt_ms(extra: Any, state: str) -> float | None:
    """The latest RTT in milliseconds (3 decimals), only while up or stale: a lost probe has no RTT."""
    rtt = extra.last_rtt if extra is not None and state in (states.UP, states.STALE) else None
    return None if rtt is None else int(rtt * 1_000_000) / 1000


KIND = Kind(
    name="icmp",
    options=IcmpOptions,
    schema=SCHEMA,
    actor="fieldwatch.actors.icmp.actor:IcmpActor",
    metrics=(
        Family("fieldwatch_icmp_rtt_seconds", "histogram", "ICMP round-trip time.", _rtt),
        Family("fieldwatch_icmp_packet_loss_ratio", "gauge", "Packet loss of the last ICMP probe (0..1).", _loss),
    ),
    supervision={"health_check": {"interval_s": 10.0}},
    page_facts={"rtt_ms": _rtt_ms},
    shared="fieldwatch.actors.icmp.prober:stop_shared_prober",
)
