"""The Prometheus collector of SPEC section 7: fresh families per scrape from lock-protected snapshots.

It reads `StatusBoard.snapshot()`, `TreeView.supervisor_restarts()` and the storage
gateway's `stats()`; it never asks an actor. Label values are names, kinds, states,
conditions and results only (never error text), and an endpoint's series vanish with it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from fieldwatch import states
from fieldwatch.actors.tree import TreeView
from fieldwatch.status import RTT_BUCKETS, StatusBoard, effective_state
from fieldwatch.storage.gateway import StorageStats

__all__ = ["ALERT_CONDITIONS", "COUNTER_RESULTS", "FieldwatchCollector"]

_EP = ("site", "endpoint", "kind")
#: Per kind: the labelled counter family fed by ConnectionActor.count(family, label).
COUNTER_RESULTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mqtt": ("fieldwatch_mqtt_messages", "mqtt_messages", ("stored", "parse_error", "ignored")),
    "opcua": ("fieldwatch_opcua_reads", "opcua_reads", ("ok", "bad_status", "error")),
}
#: Alert conditions exported per kind (always present, 0 when no alert is active).
ALERT_CONDITIONS: dict[str, tuple[str, ...]] = {
    "icmp": ("down", "stale", "faulty"),
    "mqtt": ("down", "stale", "faulty", "offline"),
    "opcua": ("down", "stale", "faulty", "threshold"),
}
_COUNTER_HELP = {"mqtt": "MQTT messages received, by outcome.", "opcua": "OPC UA node reads, by outcome."}
_DEFAULT_CONDITIONS = ("down", "stale", "faulty")
_RTT_LE = tuple(floatToGoString(b) for b in RTT_BUCKETS) + ("+Inf",)


class _Stats(Protocol):
    def stats(self) -> StorageStats: ...


class FieldwatchCollector:
    """Register once on the injected registry; `collect()` builds every family anew."""

    def __init__(self, board: StatusBoard, tree: TreeView, storage: _Stats) -> None:
        self._board = board
        self._tree = tree
        self._storage = storage

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry must not call collect() at registration."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric of SPEC section 7, from snapshots taken now."""
        yield from self._endpoint_families()
        yield from self._storage_families()
        restarts = CounterMetricFamily(
            "fieldwatch_supervisor_restarts", "Children restarted by each supervisor.", labels=("supervisor",)
        )
        for path, count in sorted(self._tree.supervisor_restarts().items()):
            restarts.add_metric((path,), count)
        yield restarts

    def _endpoint_families(self) -> list[Metric]:
        now = time.time()
        up = GaugeMetricFamily("fieldwatch_endpoint_up", "1 when the endpoint is up with fresh data.", labels=_EP)
        state = GaugeMetricFamily(
            "fieldwatch_endpoint_state", "1 for the endpoint's current state, 0 for the others.",
            labels=(*_EP, "state"),
        )
        last = GaugeMetricFamily(
            "fieldwatch_endpoint_last_data_timestamp_seconds", "Unix time of the endpoint's last data.", labels=_EP
        )
        restarts = CounterMetricFamily(
            "fieldwatch_endpoint_restarts", "Times the endpoint's actor was restarted.", labels=_EP
        )
        reconnects = CounterMetricFamily(
            "fieldwatch_endpoint_reconnects", "Times the endpoint reconnected after its first connection.", labels=_EP
        )
        rtt = HistogramMetricFamily("fieldwatch_icmp_rtt_seconds", "ICMP round-trip time.", labels=_EP)
        loss = GaugeMetricFamily(
            "fieldwatch_icmp_packet_loss_ratio", "Packet loss of the last ICMP probe (0..1).", labels=_EP
        )
        results = {
            kind: CounterMetricFamily(name, _COUNTER_HELP[kind], labels=(*_EP, "result"))
            for kind, (name, _family, _results) in COUNTER_RESULTS.items()
        }
        alerts = GaugeMetricFamily(
            "fieldwatch_alerts_active", "Active alerts per endpoint and condition.", labels=(*_EP, "condition")
        )
        state_names = states.ALL_STATES
        for status in self._board.snapshot():
            site, name, kind = status.site, status.name, status.kind
            labels = {"site": site, "endpoint": name, "kind": kind}
            shown, _ = effective_state(status, now)
            up.samples.append(Sample("fieldwatch_endpoint_up", labels, 1.0 if shown == states.UP else 0.0))
            for each in state_names:
                state.samples.append(
                    Sample("fieldwatch_endpoint_state", {**labels, "state": each}, 1.0 if each == shown else 0.0)
                )
            if status.last_data_at is not None:
                last.samples.append(Sample(last.name, labels, status.last_data_at))
            restarts.samples.append(Sample("fieldwatch_endpoint_restarts_total", labels, float(status.restarts)))
            reconnects.samples.append(
                Sample("fieldwatch_endpoint_reconnects_total", labels, float(status.reconnects))
            )
            if kind == "icmp":
                cumulative = itertools.accumulate(status.rtt_buckets)
                for le, count in zip(_RTT_LE, (*cumulative, status.rtt_count)):
                    rtt.samples.append(Sample("fieldwatch_icmp_rtt_seconds_bucket", {**labels, "le": le}, float(count)))
                rtt.samples.append(Sample("fieldwatch_icmp_rtt_seconds_count", labels, float(status.rtt_count)))
                rtt.samples.append(Sample("fieldwatch_icmp_rtt_seconds_sum", labels, status.rtt_sum))
                if status.packet_loss is not None:
                    loss.samples.append(Sample(loss.name, labels, status.packet_loss))
            counted = COUNTER_RESULTS.get(kind)
            if counted is not None:
                family_name, counter_family, labels_of = counted
                family = results[kind]
                for result in labels_of:
                    value = status.counters.get((counter_family, result), 0.0)
                    family.samples.append(Sample(family_name + "_total", {**labels, "result": result}, value))
            active: dict[str, int] = {}
            for condition, _subject in status.alerts:
                active[condition] = active.get(condition, 0) + 1
            for condition in ALERT_CONDITIONS.get(kind, _DEFAULT_CONDITIONS):
                alerts.samples.append(
                    Sample("fieldwatch_alerts_active", {**labels, "condition": condition}, active.pop(condition, 0))
                )
            for condition, count in sorted(active.items()):  # a condition this kind does not usually raise
                alerts.samples.append(Sample("fieldwatch_alerts_active", {**labels, "condition": condition}, count))
        return [up, state, last, restarts, reconnects, rtt, loss, *results.values(), alerts]

    def _storage_families(self) -> list[Metric]:
        stats = self._storage.stats()
        hist = stats.commit_seconds
        write_seconds = HistogramMetricFamily(
            "fieldwatch_storage_write_seconds",
            "Time to commit one batch of writes.",
            buckets=[
                *((floatToGoString(b), float(c)) for b, c in zip(hist.bounds, hist.cumulative)),
                ("+Inf", float(hist.count)),
            ],
            sum_value=hist.sum,
        )
        return [
            GaugeMetricFamily(
                "fieldwatch_storage_queue_depth", "Writes queued and not yet committed.", value=stats.queue_depth
            ),
            CounterMetricFamily(
                "fieldwatch_storage_writes", "Rows written (committed).", value=stats.writes_total
            ),
            CounterMetricFamily(
                "fieldwatch_storage_write_errors", "Failed write attempts (each retried).",
                value=stats.write_errors_total,
            ),
            CounterMetricFamily(
                "fieldwatch_storage_discarded_writes",
                "Writes dropped on purpose: from an older actor generation or for a deleted endpoint.",
                value=stats.discarded_total,
            ),
            write_seconds,
            GaugeMetricFamily(
                "fieldwatch_storage_ready", "1 while storage is writable.", value=1.0 if stats.ready else 0.0
            ),
        ]
