"""The ICMP endpoint actor: pings `host` every `interval_s` through the shared prober.

`connect()` resolves the host (a name that does not resolve is `faulty`, retried at
the maximum backoff, one event) and hands the prober a drift-free schedule (the prober
owns the timing, so a slow actor never shifts it). Results go to the hub (hub.py): a
probe that answered while the endpoint is steadily `up` is applied there in a batch;
every other result is told to the actor as a `ProbeDone`, in order, and the actor
counts: `down_after` failed probes in a row => `down` (alert), `up_after` successes =>
`up` (alert resolved). While down the actor keeps probing every interval, so a device
that comes back is `up` within an interval.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from typing import Any, ClassVar

from fieldwatch import states
from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.connection import ConnectionActor, EndpointContext, Failure
from fieldwatch.actors.icmp.capability import HostNotResolved, IcmpUnavailable
from fieldwatch.actors.icmp.hub import IcmpHub, ProbeDone, ProbeSlot, probe_readings, shared_hub
from fieldwatch.actors.icmp.prober import Prober, ProbeResult, resolve, shared_prober
from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.actors.icmp.stats import fold_probe
from fieldwatch.actors.messages import HEALTHY, Health
from fieldwatch.actors.pool import PooledActor

__all__ = ["IcmpActor", "ProbeDone"]

_connections = itertools.count(1)


class IcmpActor(PooledActor, ConnectionActor):
    """One ICMP endpoint: its state machine; the sockets belong to the shared Prober."""

    kind: ClassVar[str] = "icmp"
    options: IcmpOptions
    inline_health_check = True  # check_health reads this actor's own fields and the ledger

    def __init__(
        self, child: ChildContext, endpoint: EndpointContext, prober: Prober | None = None, hub: IcmpHub | None = None
    ) -> None:
        super().__init__(child, endpoint)
        self._prober = prober  # None: the process's shared prober, taken at connect
        self._hub = hub or shared_hub()
        self._slot: ProbeSlot | None = None  # the current probing run; None = not probing
        self._address: str | None = None
        self._ok_streak = 0
        self._fail_streak = 0

    # -- ConnectionActor hooks ---------------------------------------------------

    def connect(self) -> None:
        """Resolve the host and start probing; `faulty` if the name does not resolve."""
        self._stop_probing()
        opts = self.options
        try:
            prober = self._prober or shared_prober()
            address = resolve(opts.host, opts.timeout_s)
        except HostNotResolved as err:
            # -> FAULTY (once; re-resolved at the maximum backoff, silently while it fails)
            self.retry_later(Failure(states.FAULTY, f"host {opts.host!r} does not resolve: {err.reason}",
                                     "HostNotResolved"))
            return
        except IcmpUnavailable as err:
            self.retry_later(Failure(states.FAULTY, str(err), "IcmpUnavailable"))  # -> FAULTY
            return
        if address != opts.host:
            self.log.debug("%s resolves to %s", opts.host, address)
        self._address = address
        self._ok_streak = self._fail_streak = 0
        self._slot = self._start_probing(prober, address)

    def disconnect(self) -> None:
        """Stop the probe timer; results still in flight are ignored (old run)."""
        self._stop_probing()

    def on_message(self, message: Any) -> Any:
        """Probe results from the prober (told from its threads)."""
        if isinstance(message, ProbeDone):
            slot = self._slot
            if slot is not None and message.conn == slot.conn:
                self._on_result(message.result)
                # For the hub: `steady` first, then `handled` (see hub.py).
                slot.steady = self.state == states.UP and self._fail_streak == 0
                slot.handled += 1
            return None
        return super().on_message(message)

    def stale_after_s(self) -> float:
        """A reply older than the detection bound means the data is not fresh."""
        opts = self.options
        return opts.interval_s * opts.down_after + opts.timeout_s + 1.0

    def check_health(self) -> Health:
        """Unhealthy when probing but no result arrived for three intervals (a stuck pipeline).

        The base class's check (stale for too long) is not asked: an ICMP endpoint is never
        `stale` (no result is `down`; readers apply the freshness rule to `up` themselves), and
        at 10,000 endpoints its read of the ledger under the ledger's lock was a fifth of the
        supervisor's time.
        """
        slot = self._slot
        if slot is not None:
            silent = time.monotonic() - slot.last_result_at
            opts = self.options
            bound = 3 * opts.interval_s + opts.timeout_s + 1.0
            if silent > bound:
                return Health(False, f"no probe result for {silent:.0f}s")
        return HEALTHY

    # -- probing -----------------------------------------------------------------

    def _start_probing(self, prober: Prober, address: str) -> ProbeSlot:
        """A new probing run: the prober probes now, then every interval on this endpoint's phase."""
        opts = self.options
        slot = ProbeSlot(self.ep.endpoint_id, self.generation, next(_connections), self.actor_ref,
                         self.ep.ledger, self.ep.storage, self.ep.scheduler)
        slot.last_data_at = self.last_data_at
        self._hub.register(slot)
        # Later probes keep a per-endpoint phase spread evenly over the interval (golden-ratio
        # sequence on the endpoint id), so thousands of endpoints never all probe at once.
        phase = (self.ep.endpoint_id * 0.6180339887498949) % 1.0 * opts.interval_s
        slot.schedule = prober.schedule(address, count=opts.count, timeout_s=opts.timeout_s,
                                        period_s=opts.interval_s, sink=self._hub.deliver, token=slot,
                                        phase_s=phase)
        return slot

    def _stop_probing(self) -> None:
        if self._slot is not None:
            self._hub.unregister(self._slot)
            self._slot = None

    def _on_result(self, result: ProbeResult) -> None:
        opts = self.options
        self.inc.observe(fold_probe, (result.rtts, result.loss))
        at = result.started_at
        self.ep.storage.submit_many(probe_readings(self.ep.endpoint_id, self.generation, result, time.time()))
        if result.ok:
            self._ok_streak += 1
            self._fail_streak = 0
            self.data_received(at)
            if self.state != states.UP and self._ok_streak >= opts.up_after:
                self.connected(f"{self._target()} answers")  # CONNECTING/DOWN/FAULTY -> UP
            return
        self._fail_streak += 1
        self._ok_streak = 0
        if self.state != states.DOWN and self._fail_streak >= opts.down_after:
            why = f"; {result.error}" if result.error else ""
            # UP/CONNECTING/FAULTY -> DOWN (sets down_since, opens the alert)
            self.transition(states.DOWN, f"no reply from {self._target()} to {self._fail_streak} "
                                         f"probes in a row{why}")

    def _target(self) -> str:
        host, address = self.options.host, self._address
        return host if address is None or _is_ip(host) else f"{host} ({address})"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
