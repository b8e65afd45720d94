"""The ICMP kind's live figures on the ledger: an RTT histogram, the last RTT and the packet loss.

The ledger keeps them in `EndpointStatus.extra` without looking inside; the hub and the
actor fold each probe in with `fold_probe` (through `observe_many` / `Incarnation.observe`),
and readers (metrics, the status page) read the copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["RTT_BUCKETS", "RttStats", "fold_probe"]

#: Histogram buckets of fieldwatch_icmp_rtt_seconds.
RTT_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(slots=True)
class RttStats:
    """One endpoint's round-trip times since it was registered, and its latest probe's figures."""

    #: non-cumulative count per RTT_BUCKETS bound (an RTT above the last bound is in `count` only)
    buckets: list[int] = field(default_factory=lambda: [0] * len(RTT_BUCKETS))
    sum: float = 0.0
    count: int = 0
    packet_loss: float | None = None
    #: the latest round-trip time (seconds), shown on the status page
    last_rtt: float | None = None

    def copy(self) -> RttStats:
        """An independent copy for readers."""
        return RttStats(list(self.buckets), self.sum, self.count, self.packet_loss, self.last_rtt)


def fold_probe(stats: RttStats | None, probe: tuple[Sequence[float], float]) -> RttStats:
    """Fold one probe's (round-trip times in seconds, loss ratio) into `stats` (a new one if None)."""
    if stats is None:
        stats = RttStats()
    rtts, loss = probe
    buckets = stats.buckets
    for rtt in rtts:
        stats.last_rtt = rtt
        stats.sum += rtt
        stats.count += 1
        for i, bound in enumerate(RTT_BUCKETS):
            if rtt <= bound:
                buckets[i] += 1
                break
    stats.packet_loss = loss
    return stats
