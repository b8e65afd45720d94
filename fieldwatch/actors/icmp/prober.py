"""The shared ICMP prober: one socket per address family and one receiver for the process.

A raw ICMP socket sees every ICMP reply on the machine, so a socket per host costs
N-squared work; here every echo request goes out through the one icmplib socket of
its family, and one receiver thread demultiplexes the replies by (id, sequence).
With unprivileged (datagram) sockets the kernel rewrites the id to the socket's own
ident and only delivers our replies, so the sequence (plus the address) is the key.

Sends and timeouts run on one sender thread (its own calendar of due probes; recurring
schedules re-arm themselves, drift-free), replies on one receiver thread; a probe's
callback runs once, on one of these two threads, and the results of scheduled probes
that finish in the same pass go to their sink in one call.
"""

from __future__ import annotations

import collections
import heapq
import logging
import math
import os
import random
import select
import threading
import time
from typing import Any

from icmplib.exceptions import ICMPLibError

from fieldwatch.actors.icmp.capability import (
    ECHO_REPLY,
    ICMP_ERRORS,
    HostNotResolved,
    detect,
    open_socket,
    resolve,
)
from fieldwatch.actors.icmp.probes import (
    BatchSink,
    LatenessLog,
    ProbeResult,
    ProbeSchedule,
    ResultCallback,
    _check,
    _deliver_all,
    _parse_address,
    _Probe,
    _same_address,
)
from fieldwatch.actors.icmp.wire import Reply, echo_request, enable_timestamps, read_counted, send_to

__all__ = [
    "BatchSink",
    "HostNotResolved",
    "LatenessLog",
    "ProbeResult",
    "ProbeSchedule",
    "Prober",
    "ResultCallback",
    "resolve",
    "shared_prober",
    "stop_shared_prober",
]

logger = logging.getLogger(__name__)

_SEQ_SPACE = 1 << 16


#: Set by benchmarks to record lateness; None (the default) costs one global lookup per probe.
lateness_log: LatenessLog | None = None

#: The sender pauses this long after a busy pass, so that the sends due within it go out
#: in one pass (one wake-up) instead of one per packet; it bounds the lateness of a send
#: (p50 ~8.5 ms, p99 ~17 ms on a quiet machine). Every wake-up costs tens of microseconds
#: of CPU, and at 1,000 probes a second the passes, not the packets, dominate: measured with
#: `benchmarks/icmp_prober_bench.py --endpoints 10000 --interval 10` (two pairs of runs), the
#: sender cost 0.037-0.040 ms a probe at 8 ms, 0.027-0.029 at 16 ms, 0.024 at 32 ms (issue 17).
_SEND_NAP_S = 0.016
#: The receiver's pause after a busy pass without kernel receive timestamps (the RTT is
#: then taken when the reply is read, so the pause stays short).
_NAP_S = 0.004
#: The receiver pauses this long after a pass that finished probes when every socket has
#: the kernel's receive timestamps (RTTs do not grow with it; without them it pauses
#: _NAP_S). Each wake-up of a thread costs tens of microseconds of CPU (timer, scheduler,
#: GIL handoffs with the sender in the middle of its sends), more than matching a reply:
#: at 1,000 replies a second this makes ~10 passes of ~100 replies instead of ~250 of ~4
#: (and the hub applies them in bigger batches, which the writer commits as one: at 10,000
#: endpoints its CPU per probe fell ~20 % from 50 to 100 ms, issue 17). A result is then
#: delivered at most this much later (a recovery is seen that much later; a failure is
#: decided at the timeout, readers call a reply stale only after intervals); the 4 MB receive
#: buffer holds ~5,000 replies, far more than 100 ms of them below ~50,000 a second. A
#: probe about to time out is never expired before the sender has read the replies already
#: waiting (see `_expire`), and a pass that filled its read limit does not pause at all.
_RECEIVE_NAP_S = 0.100
_READ_LIMIT = 512


class Prober:
    """Sends echo requests for many probes through one socket per family; see the module doc.

    `submit()` (one probe) and `schedule()` (a probe every period) never block and never
    raise for network errors: every probe ends in exactly one result. Probes pending at
    `stop()` get none.
    """

    def __init__(self, *, privileged: bool | None = None) -> None:
        self._privileged_arg = privileged
        self._privileged = False
        self._ident = 0  # our ICMP id with raw sockets; 0 = the kernel's (datagram sockets)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # the sender waits on it for due work
        self._due = _DueQueue()  # ProbeSchedule | _Probe by due time
        # timeout -> FIFO of cohorts: [deadline, probes not done yet, probes] (see _expire)
        self._expiries: dict[float, collections.deque[list[Any]]] = {}
        self._pending: dict[tuple[int, int], list[Any]] = {}  # key -> [probe, wall time sent]
        self._next_seq = random.randrange(_SEQ_SPACE)
        self._sockets: dict[int, Any] = {}  # version -> icmplib socket
        self._socket_errors: dict[int, str] = {}
        self._unstamped: set[int] = set()  # versions whose socket has no kernel receive timestamps
        self._sender: threading.Thread | None = None
        self._receiver: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._running = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Pick the socket mode (capability probe unless given) and start both threads."""
        if self._running:
            return
        self._privileged = (
            detect().privileged if self._privileged_arg is None else self._privileged_arg
        )
        self._ident = random.randrange(1, 0xFFFF) if self._privileged else 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._running = True
        self._sender = threading.Thread(target=self._send_loop, name="fieldwatch-icmp-sender", daemon=True)
        self._receiver = threading.Thread(
            target=self._receive_loop, name="fieldwatch-icmp-receiver", daemon=True
        )
        self._sender.start()
        self._receiver.start()

    def stop(self) -> None:
        """Stop both threads (joined within 2 s) and close the sockets."""
        with self._cond:
            if not self._running:
                return
            self._running = False
            self._due.clear()
            self._cond.notify_all()
        self._wake()
        me = threading.current_thread()
        for thread in (self._sender, self._receiver):
            if thread is not None and thread is not me:
                thread.join(1.0)
        with self._lock:
            sockets = list(self._sockets.values())
            self._sockets.clear()
            self._pending.clear()
            self._expiries.clear()
        for sock in sockets:
            sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def privileged(self) -> bool:
        """Whether raw sockets are used (valid after start())."""
        return self._privileged

    @property
    def family_sockets(self) -> int:
        """How many ICMP sockets are open (at most one per address family)."""
        with self._lock:
            return len(self._sockets)

    @property
    def outstanding_requests(self) -> int:
        """Echo requests sent and still waiting for a reply or their timeout."""
        with self._lock:
            return len(self._pending)

    # -- requests --------------------------------------------------------------

    def submit(
        self,
        address: str,
        *,
        count: int,
        timeout_s: float,
        callback: ResultCallback,
        due: float | None = None,
        interval_s: float = 0.2,
    ) -> None:
        """Probe `address` (an IP, not a name) with `count` echo requests starting at `due`.

        `due` is a time.monotonic() value (None: now). `callback` is called once, from a
        prober thread, when every reply is in or `timeout_s` after the last send; it must
        be quick (tell an actor). Raises only for invalid arguments or a stopped prober.
        """
        _check(count, timeout_s, interval_s)
        match, version, error = _parse_address(address)
        when = time.monotonic() if due is None else due
        probe = _Probe(address, match, version, count, timeout_s, interval_s, callback, when)
        probe.error = error
        self._push(when, probe)

    def schedule(
        self,
        address: str,
        *,
        count: int,
        timeout_s: float,
        period_s: float,
        sink: BatchSink,
        token: Any,
        first_due: float | None = None,
        phase_s: float = 0.0,
        interval_s: float = 0.2,
    ) -> ProbeSchedule:
        """Probe `address` now (or at `first_due`), then at `phase_s` + n * `period_s` after that.

        Results go to `sink` as (`token`, result) pairs, batched with the other results that
        finished in the same pass of the prober's threads. Cancel the returned handle to stop.
        """
        _check(count, timeout_s, interval_s)
        if period_s <= 0:
            raise ValueError("period_s must be > 0")
        now = time.monotonic() if first_due is None else first_due
        if not (math.isfinite(now) and math.isfinite(phase_s) and math.isfinite(period_s)):
            raise ValueError("first_due, phase_s and period_s must be finite")
        handle = ProbeSchedule(address, count, timeout_s, interval_s, period_s, sink, token)
        first = _Probe(address, handle.match, handle.version, count, timeout_s, interval_s, None, now, schedule=handle)
        first.error = handle.error
        self._push(now, first)
        self._push(now + (phase_s or period_s), handle)
        return handle

    def _push(self, due: float, item: Any) -> None:
        if not math.isfinite(due):
            raise ValueError("the due time must be a finite time.monotonic() value")
        with self._cond:
            if not self._running:
                raise RuntimeError("the ICMP prober is not running")
            if self._due.push(due, item):
                self._cond.notify()

    # -- the sender thread ------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while self._running:
                    now = time.monotonic()
                    wake_at = self._next_wakeup()
                    if wake_at is not None and wake_at <= now:
                        break
                    self._cond.wait(None if wake_at is None else wake_at - now)
                if not self._running:
                    return
                due = self._due.pop_due(now)
            finished: list[tuple[_Probe, ProbeResult]] = []
            if due:
                self._send_due(due, now, finished)
            self._expire(time.monotonic(), finished)
            _deliver_all(finished)
            time.sleep(_SEND_NAP_S)

    def _next_wakeup(self) -> float | None:
        """The earliest send or expiry. Under _lock."""
        times = [queue[0][0] for queue in self._expiries.values() if queue]
        earliest = self._due.earliest()
        if earliest is not None:
            times.append(earliest)
        return min(times) if times else None

    def _send_due(self, due: list[tuple[float, Any]], now: float, finished: list[tuple[_Probe, ProbeResult]]) -> None:
        """Send one request of every probe due (new ticks of schedules start a probe)."""
        wall = time.time()
        sends: list[tuple[Any, bytes, _Probe, list[Any], tuple[int, int]]] = []
        touched: list[_Probe] = []
        firsts: list[_Probe] = []
        log = lateness_log
        with self._lock:
            queue = self._due
            for when, item in due:
                if type(item) is ProbeSchedule:
                    if item.cancelled:
                        continue
                    probe = _Probe(item.address, item.match, item.version, item.count, item.timeout_s,
                                   item.interval_s, None, when, schedule=item)
                    probe.error = item.error
                    period = item.period_s
                    nxt = when + period
                    if nxt <= now:  # fell behind by whole periods: skip them, keep the phase
                        nxt += ((now - nxt) // period + 1) * period
                    queue.push(nxt, item)
                else:
                    probe = item
                    if probe.attempted == 0 and probe.schedule is not None and probe.schedule.cancelled:
                        continue
                if probe.done or not self._running:
                    continue
                if probe.attempted == 0:  # refined at the send below; kept if nothing is sent
                    probe.started_at = wall
                    probe.lateness_s = max(0.0, now - probe.due)
                    firsts.append(probe)
                self._prepare(probe, sends)
                touched.append(probe)
                if probe.attempted < probe.count:
                    queue.push(probe.due + probe.attempted * probe.interval_s, probe)
        failed: list[tuple[_Probe, tuple[int, int], str]] = []
        for sock, packet, probe, entry, key in sends:
            entry[1] = sent_at = time.time()  # before the send: a loopback reply can be read before sendto returns
            if probe.keys[0] == key:  # the probe's first request: when it really went out
                probe.started_at = sent_at
                probe.lateness_s = max(0.0, time.monotonic() - probe.due)
            try:
                send_to(sock, packet, probe.address)
            except OSError as err:
                failed.append((probe, key, f"send failed: {err}"))
        if log is not None:
            for probe in firsts:
                log.add(probe.lateness_s)
        deadline = time.monotonic()
        cohorts: dict[float, list[Any]] = {}  # timeout -> this pass's cohort
        with self._lock:
            for probe, key, error in failed:
                if self._pending.pop(key, None) is not None:
                    probe.outstanding -= 1
                    probe.sent -= 1
                probe.error = probe.error or error
            for probe in touched:
                if probe.done or probe.attempted < probe.count:
                    continue
                result = self._finish_if_complete(probe)
                if result is not None:
                    finished.append((probe, result))
                elif probe.cohort is None:
                    cohort = cohorts.get(probe.timeout_s)
                    if cohort is None:
                        cohort = cohorts[probe.timeout_s] = [deadline + probe.timeout_s, 0, []]
                        self._expiries.setdefault(probe.timeout_s, collections.deque()).append(cohort)
                    cohort[1] += 1
                    cohort[2].append(probe)
                    probe.cohort = cohort

    def _prepare(self, probe: _Probe, sends: list[Any]) -> None:
        """Register the probe's next request (or give it up). Under _lock."""
        sock = self._socket_for(probe.version) if probe.version else None
        if sock is None:  # nothing can be sent: give up the remaining requests
            probe.error = probe.error or self._socket_errors.get(probe.version)
            probe.attempted = probe.count
            return
        key = self._allocate_key()
        probe.attempted += 1
        if key is None:
            probe.error = probe.error or "too many outstanding echo requests"
            return
        entry = [probe, 0.0]
        self._pending[key] = entry
        probe.keys.append(key)
        probe.outstanding += 1
        probe.sent += 1
        sends.append((sock.sock, echo_request(probe.version, self._ident, key[1]), probe, entry, key))

    def _expire(self, now: float, finished: list[tuple[_Probe, ProbeResult]]) -> None:
        """Finish the probes whose timeout passed; replies already waiting count first.

        The probes whose last request went out in one pass wait for their timeout together,
        as one cohort that counts those not done yet (`_finish` counts down), so a cohort
        that was all answered goes without touching its probes again (a probe read a
        second later is a cache miss; at 10,000 endpoints that was a tenth of the sender).

        The receiver pauses between passes, so before a probe that is still waiting is
        given up the sender reads the sockets itself (a reply that came in time is not
        lost to the pause).
        """
        with self._lock:
            waiting = False
            for queue in self._expiries.values():
                while queue and queue[0][0] <= now and queue[0][1] == 0:
                    queue.popleft()  # all answered in time: nothing to expire
                waiting = waiting or bool(queue and queue[0][0] <= now)
            if not waiting:
                return
            sockets = list(self._sockets.items())
        for version, sock in sockets:
            self._read_socket(version, sock, finished)
        with self._lock:
            for queue in self._expiries.values():
                while queue and queue[0][0] <= now:
                    cohort = queue.popleft()
                    if cohort[1] == 0:
                        continue
                    for probe in cohort[2]:
                        if not probe.done:
                            finished.append((probe, self._finish(probe)))

    def _allocate_key(self) -> tuple[int, int] | None:
        """The next free (id, sequence); the 16-bit sequence wraps around. Under _lock."""
        for _ in range(_SEQ_SPACE):
            seq = self._next_seq
            self._next_seq = (seq + 1) % _SEQ_SPACE
            if (self._ident, seq) not in self._pending:
                return (self._ident, seq)
        return None

    def _finish_if_complete(self, probe: _Probe) -> ProbeResult | None:
        """Finish `probe` if every request went out and none awaits a reply. Under _lock."""
        if probe.done or probe.attempted < probe.count or probe.outstanding > 0:
            return None
        return self._finish(probe)

    def _finish(self, probe: _Probe) -> ProbeResult:
        """Mark `probe` done and forget its unanswered requests. Under _lock."""
        probe.done = True
        cohort = probe.cohort
        if cohort is not None:
            cohort[1] -= 1
            probe.cohort = None  # no cycle left behind for the garbage collector
        for key in probe.keys:
            entry = self._pending.get(key)
            if entry is not None and entry[0] is probe:  # the key may be reused by now
                del self._pending[key]
        return probe.result()

    def _socket_for(self, version: int) -> Any:
        """The socket of this family, opened on first use; None (error logged once) if it fails. Under _lock."""
        sock = self._sockets.get(version)
        if sock is not None:
            return sock
        try:
            sock = open_socket(version, self._privileged)
            sock.sock.setblocking(False)
            if not enable_timestamps(sock.sock):
                self._unstamped.add(version)
        except (ICMPLibError, OSError) as err:
            message = f"cannot open an ICMPv{version} socket: {err}"
            if version not in self._socket_errors:
                logger.error("%s", message)
            self._socket_errors[version] = message
            return None
        self._sockets[version] = sock
        self._socket_errors.pop(version, None)
        self._wake()  # let the receiver select on the new socket
        return sock

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except OSError:  # closed by stop()
            pass

    # -- the receiver ----------------------------------------------------------

    def _receive_loop(self) -> None:
        while self._running:
            with self._lock:
                by_fd = {s.sock.fileno(): (v, s) for v, s in self._sockets.items()}
            try:
                readable, _, _ = select.select([self._wake_r, *by_fd], [], [], 0.5)
            except (OSError, ValueError):  # a socket closed by stop()
                continue
            finished: list[tuple[_Probe, ProbeResult]] = []
            full = False
            for fd in readable:
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                    continue
                version, sock = by_fd[fd]
                full = self._read_socket(version, sock, finished) or full
                if not self._running:
                    return
            if finished:
                _deliver_all(finished)
                if not full:  # more may be waiting: read again at once
                    time.sleep(_NAP_S if self._unstamped else _RECEIVE_NAP_S)

    def _read_socket(self, version: int, sock: Any, finished: list[tuple[_Probe, ProbeResult]]) -> bool:
        """Read and match every reply waiting on `sock` (True if the read limit was reached)."""
        try:
            replies, count = read_counted(sock.sock, version, self._privileged and version == 4, _READ_LIMIT)
        except OSError as err:
            if self._running:
                logger.debug("ICMPv%d receive: %s", version, err)
            return False
        if replies:
            self._on_replies(version, replies, finished)
        return count >= _READ_LIMIT

    def _on_replies(self, version: int, replies: list[Reply], finished: list[tuple[_Probe, ProbeResult]]) -> None:
        echo, errors = ECHO_REPLY[version], ICMP_ERRORS[version]
        privileged, ident = self._privileged, self._ident
        with self._lock:
            for reply in replies:
                kind = reply.kind
                if kind != echo and (not privileged or kind not in errors):
                    continue
                if privileged and reply.ident != ident:
                    continue  # another process's ping: a raw socket sees them all
                key = (ident, reply.sequence)
                entry = self._pending.get(key)
                if entry is None:
                    continue
                probe = entry[0]
                if kind == echo:
                    if not _same_address(reply.source, probe.match):
                        continue
                    probe.rtts.append(max(0.0, reply.received_at - entry[1]))
                else:
                    probe.error = probe.error or f"{errors[kind]} (code {reply.code}) from {reply.source}"
                del self._pending[key]
                probe.outstanding -= 1
                result = self._finish_if_complete(probe)
                if result is not None:
                    finished.append((probe, result))


class _DueQueue:
    """Items by due time (time.monotonic()), earliest first; equal times in push order.

    A calendar: items wait in slots of `_SLOT_S` by due time, and a heap holds the distinct
    slot numbers. At 10,000 schedules a heap of one entry per item cost ~5 µs a pop: each
    of its ~30 comparisons read a float no one had touched for a whole period (a cache miss),
    most of the sender's time (issue 17). Now the heap moves once per slot (a few per pass),
    and the items due are sorted once per pass. Not thread-safe (the prober's lock guards it).
    """

    __slots__ = ("_earliest", "_heap", "_slots")

    def __init__(self) -> None:
        self._slots: dict[int, list[tuple[float, Any]]] = {}
        self._heap: list[int] = []  # the slot numbers in _slots
        self._earliest: float | None = None

    def __len__(self) -> int:
        return sum(len(items) for items in self._slots.values())

    def push(self, due: float, item: Any) -> bool:
        """Add `item` (due must be finite); True if nothing is due earlier."""
        slot = int(due // _SLOT_S)
        items = self._slots.get(slot)
        if items is None:
            self._slots[slot] = [(due, item)]
            heapq.heappush(self._heap, slot)
        else:
            items.append((due, item))
        earliest = self._earliest
        if earliest is None or due <= earliest:
            self._earliest = due
            return True
        return False

    def pop_due(self, now: float) -> list[tuple[float, Any]]:
        """Remove and return the (due, item) pairs due at `now`, earliest first."""
        earliest = self._earliest
        if earliest is None or earliest > now:
            return []
        out: list[tuple[float, Any]] = []
        heap, slots = self._heap, self._slots
        current = int(now // _SLOT_S)
        while heap and heap[0] < current:
            out += slots.pop(heapq.heappop(heap))
        if heap and heap[0] == current:
            items = slots[current]
            later = [entry for entry in items if entry[0] > now]
            if later:
                out += [entry for entry in items if entry[0] <= now]
                slots[current] = later
            else:
                out += items
                del slots[current]
                heapq.heappop(heap)
        out.sort(key=_due_of)  # stable: equal times stay in push order
        self._earliest = min(entry[0] for entry in slots[heap[0]]) if heap else None
        return out

    def earliest(self) -> float | None:
        """The earliest due time, None when empty."""
        return self._earliest

    def clear(self) -> None:
        self._slots.clear()
        self._heap.clear()
        self._earliest = None


#: The width of a _DueQueue slot. The slot due now is split (what is not due stays), so it
#: does not delay a send; wider slots mean fewer heap moves (~one a pass at 10,000 endpoints).
_SLOT_S = 0.010


def _due_of(entry: tuple[float, Any]) -> float:
    return entry[0]


# -- the process-wide instance -------------------------------------------------

_shared_lock = threading.Lock()
_shared: Prober | None = None


def shared_prober() -> Prober:
    """The process's one prober, started on first use (raises IcmpUnavailable if it cannot)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            prober = Prober()
            prober.start()
            _shared = prober
        return _shared


def stop_shared_prober() -> None:
    """Stop the process's prober (at shutdown, after the ICMP actors)."""
    global _shared
    with _shared_lock:
        prober, _shared = _shared, None
    if prober is not None:
        prober.stop()
