"""The ICMP prober's records: results, schedules, one probe's bookkeeping, and delivering results."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchSink", "LatenessLog", "ProbeResult", "ProbeSchedule", "ResultCallback"]

logger = logging.getLogger("fieldwatch.actors.icmp.prober")


@dataclass(slots=True, frozen=True)
class ProbeResult:
    """One probe (`sent` echo requests to `address`): replies, RTTs and any error."""

    address: str
    sent: int
    received: int
    rtts: tuple[float, ...]  # seconds, in arrival order
    started_at: float  # time.time() when the first request was sent
    lateness_s: float  # first send vs the requested due time
    error: str | None = None  # why requests failed (send error, unreachable), never raised

    @property
    def loss(self) -> float:
        """Fraction of requests without a reply, 0..1 (1.0 when nothing could be sent)."""
        return 1.0 if self.sent == 0 else 1.0 - self.received / self.sent

    @property
    def ok(self) -> bool:
        """Whether at least one reply came back."""
        return self.received > 0

    @property
    def rtt_min(self) -> float | None:
        """Smallest round-trip time in seconds, None without replies."""
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        """Mean round-trip time in seconds, None without replies."""
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        """Largest round-trip time in seconds, None without replies."""
        return max(self.rtts) if self.rtts else None


ResultCallback = Callable[[ProbeResult], None]


class LatenessLog:
    """Benchmarks only: every probe's lateness (seconds), when `prober.lateness_log` is set."""

    def __init__(self) -> None:
        self._items: list[float] = []

    def add(self, lateness_s: float) -> None:
        """Record one probe's lateness (list.append is atomic under the GIL)."""
        self._items.append(lateness_s)

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self._items = []

    def take(self) -> list[float]:
        """What was recorded since the last clear/take."""
        items, self._items = self._items, []
        return items


@dataclass(slots=True, eq=False)
class _Probe:
    """Mutable bookkeeping of one submitted probe; guarded by Prober._lock."""

    address: str  # as given: sent to
    match: str  # normalized, without scope: compared with reply sources
    version: int  # 4 or 6; 0 when `address` is not an IP address
    count: int
    timeout_s: float
    interval_s: float
    callback: ResultCallback | None  # None: a scheduled probe (results go to its schedule's sink)
    due: float  # monotonic
    attempted: int = 0
    sent: int = 0
    outstanding: int = 0
    rtts: list[float] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)
    started_at: float = 0.0
    lateness_s: float = 0.0
    error: str | None = None
    done: bool = False
    schedule: ProbeSchedule | None = None
    cohort: list[Any] | None = None  # the expiry cohort it waits in (see Prober._expire)

    def result(self) -> ProbeResult:
        return ProbeResult(
            self.address, self.sent, len(self.rtts), tuple(self.rtts),
            self.started_at, self.lateness_s, self.error,
        )


BatchSink = Callable[[list[tuple[Any, ProbeResult]]], None]
"""Receives the results of scheduled probes that finished together: (token, result) pairs."""

class ProbeSchedule:
    """Recurring probes of one address every `period_s`, drift-free; `cancel()` stops them."""

    __slots__ = ("address", "match", "version", "error", "count", "timeout_s", "interval_s", "period_s",
                 "sink", "token", "cancelled")

    def __init__(self, address: str, count: int, timeout_s: float, interval_s: float, period_s: float,
                 sink: BatchSink, token: Any) -> None:
        self.address = address
        self.match, self.version, self.error = _parse_address(address)
        self.count, self.timeout_s, self.interval_s, self.period_s = count, timeout_s, interval_s, period_s
        self.sink, self.token = sink, token
        self.cancelled = False

    def cancel(self) -> None:
        """No further probe starts; a probe in flight still delivers its result."""
        self.cancelled = True


def _parse_address(address: str) -> tuple[str, int, str | None]:
    """(normalized address, IP version, error): version 0 when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address, 0, f"not an IP address: {address!r}"
    return ip.compressed, ip.version, None


def _check(count: int, timeout_s: float, interval_s: float) -> None:
    if count < 1 or timeout_s <= 0 or interval_s < 0:
        raise ValueError("count must be >= 1, timeout_s > 0 and interval_s >= 0")


def _deliver_all(finished: list[tuple[_Probe, ProbeResult]]) -> None:
    """Callbacks of single probes one by one; scheduled ones in one batch per sink."""
    batches: dict[Any, list[tuple[Any, ProbeResult]]] = {}
    for probe, result in finished:
        schedule = probe.schedule
        if schedule is None:
            _deliver(probe.callback, result)
        else:
            batches.setdefault(schedule.sink, []).append((schedule.token, result))
    for sink, batch in batches.items():
        try:
            sink(batch)
        except Exception:  # supervision boundary: a caller's bug must not kill the prober threads
            logger.exception("ICMP result sink failed for %d results", len(batch))


def _deliver(callback: ResultCallback | None, result: ProbeResult) -> None:
    if callback is None:
        return
    try:
        callback(result)
    except Exception:  # supervision boundary: a caller's bug must not kill the prober threads
        logger.exception("ICMP probe callback failed for %s", result.address)


def _same_address(source: str, match: str) -> bool:
    if source == match:
        return True
    try:
        return ipaddress.ip_address(source.split("%", 1)[0]).compressed == match
    except ValueError:
        return False
