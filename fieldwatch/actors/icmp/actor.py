"""The ICMP endpoint actor: pings `host` every `interval_s` through the shared prober.

`connect()` resolves the host (a name that does not resolve is `faulty`, retried at
the maximum backoff, one event) and starts a drift-free probe timer. The timer's
callback runs on the scheduler thread and only hands the probe to the prober, so a
slow actor never shifts the probe schedule; the prober tells each result back as a
`ProbeDone`, which the actor counts: `down_after` failed probes in a row => `down`
(alert), `up_after` successes => `up` (alert resolved). While down the actor keeps
probing every interval, so a device that comes back is `up` within an interval.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pykka

from fieldwatch import states
from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.connection import ConnectionActor, EndpointContext
from fieldwatch.actors.icmp.capability import HostNotResolved, IcmpUnavailable
from fieldwatch.actors.icmp.prober import Prober, ProbeResult, resolve, shared_prober
from fieldwatch.actors.messages import Health
from fieldwatch.actors.pool import PooledActor
from fieldwatch.actors.scheduler import TimerHandle
from fieldwatch.config.model import IcmpOptions

__all__ = ["IcmpActor", "ProbeDone"]

_connections = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ProbeDone:
    """Prober -> actor: the outcome of one probe started by connection `conn`."""

    conn: int  # the probing run that submitted it; results of an older run are ignored
    result: ProbeResult


class IcmpActor(PooledActor, ConnectionActor):
    """One ICMP endpoint: its state machine; the sockets belong to the shared Prober."""

    kind: ClassVar[str] = "icmp"
    options: IcmpOptions

    def __init__(self, child: ChildContext, endpoint: EndpointContext, prober: Prober | None = None) -> None:
        super().__init__(child, endpoint)
        self._prober = prober  # None: the process's shared prober, taken at connect
        self._conn = 0  # current probing run; 0 = not probing
        self._timer: TimerHandle | None = None
        self._address: str | None = None
        self._ok_streak = 0
        self._fail_streak = 0
        self._last_result_at: float | None = None  # monotonic

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
            self.retry_later(states.FAULTY, f"host {opts.host!r} does not resolve: {err.reason}",
                             exc_type="HostNotResolved")
            return
        except IcmpUnavailable as err:
            self.retry_later(states.FAULTY, str(err), exc_type="IcmpUnavailable")  # -> FAULTY
            return
        if address != opts.host:
            self.log.debug("%s resolves to %s", opts.host, address)
        self._address = address
        self._ok_streak = self._fail_streak = 0
        self._last_result_at = time.monotonic()
        self._conn = next(_connections)
        self._timer = self._start_timer(prober, address, self._conn)

    def disconnect(self) -> None:
        """Stop the probe timer; results still in flight are ignored (old run)."""
        self._stop_probing()

    def on_message(self, message: Any) -> Any:
        """Probe results from the prober (told from its threads)."""
        if isinstance(message, ProbeDone):
            if message.conn == self._conn:
                self._on_result(message.result)
            return None
        return super().on_message(message)

    def stale_after_s(self) -> float:
        """A reply older than the detection bound means the data is not fresh."""
        opts = self.options
        return opts.interval_s * opts.down_after + opts.timeout_s + 1.0

    def check_health(self) -> Health:
        """Unhealthy when probing but no result arrived for three intervals (a stuck pipeline)."""
        if self._conn and self._last_result_at is not None:
            silent = time.monotonic() - self._last_result_at
            bound = 3 * self.options.interval_s + self.options.timeout_s + 1.0
            if silent > bound:
                return Health(False, f"no probe result for {silent:.0f}s")
        return super().check_health()

    # -- probing -----------------------------------------------------------------

    def _start_timer(self, prober: Prober, address: str, conn: int) -> TimerHandle:
        """A drift-free timer whose callback (scheduler thread) only submits a probe."""
        opts = self.options
        ref = self.actor_ref
        board, endpoint_id, generation = self.ep.board, self.ep.endpoint_id, self.generation

        def _done(result: ProbeResult) -> None:  # a prober thread: only tell
            try:
                ref.tell(ProbeDone(conn, result))
            except pykka.ActorDeadError:
                pass

        box: list[TimerHandle] = []  # the handle, once every() returned (the first tick may be earlier)

        def _tick(first: bool = False) -> None:  # the scheduler thread: touches no actor state
            handle = box[0] if box else None
            if not ref.is_alive() or board.current_generation(endpoint_id) != generation:
                if handle is not None:
                    handle.cancel()  # stopped, or replaced while hung
                return
            try:  # due: this tick's nominal time, so lateness never accumulates
                prober.submit(address, count=opts.count, timeout_s=opts.timeout_s,
                              callback=_done, due=handle.due if handle and not first else None)
            except RuntimeError:  # the prober was stopped (shutdown)
                if handle is not None:
                    handle.cancel()

        # The first probe goes out at once; later ones keep a per-endpoint phase spread
        # evenly over the interval (golden-ratio sequence on the endpoint id), so
        # thousands of endpoints never all tick at the same instant.
        phase = (self.ep.endpoint_id * 0.6180339887498949) % 1.0 * opts.interval_s
        self.ep.scheduler.call_later(0.0, lambda: _tick(first=True))
        box.append(self.ep.scheduler.every(opts.interval_s, _tick, first_delay_s=phase or opts.interval_s))
        return box[0]

    def _stop_probing(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._conn = 0

    def _on_result(self, result: ProbeResult) -> None:
        opts = self.options
        self._last_result_at = time.monotonic()
        self.ep.board.observe_rtt(self.ep.endpoint_id, result.rtts, result.loss)
        at = result.started_at
        # one row per probe: the RTT (None when nothing answered) with its loss ratio
        self.store_reading("rtt", result.rtt_avg, source_time=at, aux_name="packet_loss", aux_num=result.loss,
                           gauge=False)  # exported as fieldwatch_icmp_rtt_seconds / _packet_loss_ratio
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
