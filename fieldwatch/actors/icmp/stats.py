"""The live RTT statistics of one ICMP endpoint (its `EndpointStatus.extra`), folded under the board's lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["RTT_BUCKETS", "RttStats", "fold_probe"]

#: Histogram buckets of fieldwatch_icmp_rtt_seconds.
RTT_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(slots=True)
class RttStats:
    """Round-trip times seen so far and the last probe's loss."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(RTT_BUCKETS))  # non-cumulative per bound
    sum: float = 0.0
    count: int = 0
    packet_loss: float | None = None
    last_rtt: float | None = None

    def copy(self) -> RttStats:
        """A copy for readers."""
        return RttStats(list(self.buckets), self.sum, self.count, self.packet_loss, self.last_rtt)


def fold_probe(stats: RttStats | None, probe: tuple[Sequence[float], float]) -> RttStats:
    """Fold one probe's round-trip times (seconds) and loss ratio into `stats` (a new one for None)."""
    out = RttStats() if stats is None else stats
    rtts, loss = probe
    for rtt in rtts:
        out.last_rtt = rtt
        out.sum += rtt
        out.count += 1
        for i, bound in enumerate(RTT_BUCKETS):
            if rtt <= bound:
                out.buckets[i] += 1
                break
    out.packet_loss = loss
    return out
