"""Where the prober's results meet the ICMP actors: the steady case in batches, the rest by message.

At 10,000 endpoints a probe finishes every 100 µs. Telling each result to its actor
cost a mailbox message, a worker wake-up, a ledger lock and two storage
submits per probe, all competing for the GIL with the prober. Almost every result
changes nothing in the state machine: the endpoint is `up`, with no failure being
counted, and the probe answered. The hub applies those results itself, in one
batch per pass of the prober's threads (one ledger lock, one storage submit), and
tells the actor everything else (a failure, or any result while the endpoint is not
steadily up), in order. The state machine stays the actor's alone:

- the actor publishes `steady` (up, no failure counted) after handling each result,
  then `handled`; the hub counts the results it `told`, clears `steady` before telling,
  and applies a result itself only when `handled == told` (read first) and `steady`.
  So a result is never applied out of order with one the actor has yet to handle.
- each slot belongs to one connection run of one actor generation; a newer slot of the
  same endpoint (a replacement of a hung actor) cancels the older one's probes, and the
  ledger refuses writes of an older generation as before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pykka

from fieldwatch.actors.icmp.prober import ProbeResult, ProbeSchedule
from fieldwatch.actors.icmp.stats import fold_probe
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.ledger import EndpointLedger
from fieldwatch.storage import writes
from fieldwatch.storage.gateway import StorageGateway

__all__ = ["FLUSH_S", "TOUCH_ALONE_S", "TOUCH_MIRRORED_S", "IcmpHub", "ProbeDone", "ProbeSlot", "probe_readings", "shared_hub"]


@dataclass(frozen=True, slots=True)
class ProbeDone:
    """Hub -> actor: the outcome of one probe of connection run `conn`."""

    conn: int  # the probing run that submitted it; results of an older run are ignored
    result: ProbeResult


@dataclass(slots=True, eq=False)
class ProbeSlot:
    """What one probing run of an ICMP actor shares with the hub (see the module doc)."""

    endpoint_id: int
    generation: int
    conn: int
    ref: pykka.ActorRef[Any]
    ledger: EndpointLedger
    storage: StorageGateway
    scheduler: Scheduler | None = None  # flushes the hub's rows (None: at once)
    schedule: ProbeSchedule | None = None
    # written by the actor only
    steady: bool = False
    handled: int = 0
    # written by the hub only (steady too, to clear it before telling)
    told: int = 0
    last_result_at: float = field(default_factory=time.monotonic)  # monotonic
    last_data_at: float | None = None  # wall time of the newest answered probe applied here
    touch_stored_at: float = 0.0
    cancelled: bool = False

    def cancel(self) -> None:
        """Stop probing for this run; results still in flight are dropped."""
        self.cancelled = True
        if self.schedule is not None:
            self.schedule.cancel()


def probe_readings(endpoint_id: int, generation: int, result: ProbeResult, now: float) -> list[writes.Write]:
    """The row one probe stores: its mean RTT (None when nothing answered) with its packet loss.

    One row per probe (issue 16: `rtt` with the companion `packet_loss`), read back by the
    API as the two readings `rtt` and `packet_loss`.
    """
    rtts = result.rtts
    return [
        writes.ReadingRecord(
            endpoint_id=endpoint_id,
            generation=generation,
            name="rtt",
            value_num=sum(rtts) / len(rtts) if rtts else None,
            source_time=result.started_at,
            received_at=now,
            aux_name="packet_loss",
            aux_num=result.loss,
        )
    ]


#: How often the stored `last_data_at` of a steadily answering endpoint is refreshed (a Touch):
#: every second in a cluster, whose other instances show it ("copied from the database once a
#: second"); every minute on an instance alone, where only SQL tools read it (the API and the page
#: show the ledger's own value, and a state change stores the exact one). At 10,000 endpoints a
#: Touch per probe was about half of the pages each commit wrote (issue 17).
TOUCH_MIRRORED_S = 1.0
TOUCH_ALONE_S = 60.0

#: Rows of applied results wait this long in the hub, so the writer is woken and commits a
#: few dozen times a second instead of once per prober pass (each wake-up and commit cost
#: more than its few rows). Well within the storage batch delay (`max_delay_ms`, 50).
FLUSH_S = 0.025


class IcmpHub:
    """The prober's sink for every ICMP actor's schedule (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[int, int], ProbeSlot] = {}  # (id(ledger), endpoint_id) -> newest run
        # The sender (timeouts) and the receiver (replies) both deliver; one at a time, so the
        # hub's side of each slot (told, steady cleared) is never updated by two threads at once.
        self._deliver_lock = threading.Lock()
        self._buffers: dict[int, tuple[Any, list[Any]]] = {}  # id(storage) -> rows; under _deliver_lock
        self._flush_due: float | None = None  # monotonic; None: no flush timer pending

    def register(self, slot: ProbeSlot) -> None:
        """A new probing run: an older run of the same endpoint (a replaced actor) stops."""
        key = (id(slot.ledger), slot.endpoint_id)
        with self._lock:
            old = self._slots.get(key)
            self._slots[key] = slot
        if old is not None and old is not slot:
            old.cancel()

    def unregister(self, slot: ProbeSlot) -> None:
        """The run ended (disconnect, stop): cancel it, forget it, hand its rows to storage now."""
        self._forget(slot)
        with self._deliver_lock:
            self._flush_locked()

    def flush(self) -> None:
        """Hand the buffered rows to storage (the scheduler's timer, FLUSH_S after the first)."""
        with self._deliver_lock:
            self._flush_due = None
            self._flush_locked()

    def _flush_locked(self) -> None:
        buffers, self._buffers = self._buffers, {}
        for storage, rows in buffers.values():
            storage.submit_many(rows)  # an older generation's rows are discarded by the writer, as always

    def _forget(self, slot: ProbeSlot) -> None:
        slot.cancel()
        key = (id(slot.ledger), slot.endpoint_id)
        with self._lock:
            if self._slots.get(key) is slot:
                del self._slots[key]

    def deliver(self, batch: list[tuple[Any, ProbeResult]]) -> None:
        """Results that finished together (a prober thread): apply steady ones, tell the rest."""
        with self._deliver_lock:
            self._deliver(batch)

    def _deliver(self, batch: list[tuple[Any, ProbeResult]]) -> None:
        now = time.time()
        mono = time.monotonic()
        applied: dict[int, tuple[Any, Any, list[ProbeSlot], list[tuple[Any, ...]], list[Any]]] = {}
        for slot, result in batch:
            if slot.cancelled:
                continue
            slot.last_result_at = mono
            if result.received and slot.handled == slot.told and slot.steady:
                group = applied.get(id(slot.ledger))
                if group is None:
                    group = applied[id(slot.ledger)] = (slot.ledger, slot.storage, [], [], [])
                at = result.started_at
                slot.last_data_at = at
                group[2].append(slot)
                group[3].append((slot.endpoint_id, slot.generation, at, (result.rtts, result.loss)))
                rows = group[4]
                rows.extend(probe_readings(slot.endpoint_id, slot.generation, result, now))
                touch_s = TOUCH_ALONE_S if slot.storage.fence is None else TOUCH_MIRRORED_S
                if at - slot.touch_stored_at >= touch_s:  # the stored last_data_at
                    slot.touch_stored_at = at
                    rows.append(writes.Touch(endpoint_id=slot.endpoint_id, generation=slot.generation, last_data_at=at))
                continue
            if self._buffers:  # what the actor stores next follows what was applied before
                self._flush_locked()
            slot.steady = False
            slot.told += 1
            try:
                slot.ref.tell(ProbeDone(slot.conn, result))
            except pykka.ActorDeadError:
                self._forget(slot)
        for ledger, storage, slots, observations, rows in applied.values():
            refused = ledger.observe_many(fold_probe, observations)
            for index in refused:  # a newer generation owns the endpoint: this run is over
                self._forget(slots[index])
            scheduler = slots[0].scheduler
            if scheduler is None:
                storage.submit_many(rows)
                continue
            buffered = self._buffers.get(id(storage))
            if buffered is None:
                self._buffers[id(storage)] = (storage, rows)
            else:
                buffered[1].extend(rows)
            if self._flush_due is None:
                self._flush_due = mono + FLUSH_S
                scheduler.call_later(FLUSH_S, self.flush)
            elif mono >= self._flush_due + FLUSH_S:  # the timer is late, or lost with a stopped scheduler
                self._flush_due = None
                self._flush_locked()


_shared = IcmpHub()


def shared_hub() -> IcmpHub:
    """The process's hub."""
    return _shared
