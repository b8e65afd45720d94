"""Acknowledgement after commit, and the two kinds of duplicate SPEC §3 allows to drop.

A message is dropped as a duplicate only when

- it is the broker's redelivery (DUP flag) of a message this process committed but
  could not acknowledge because its connection was gone by then (`Redeliveries`): the
  broker never got the PUBACK, so the packet id still names that message (MQTT 3.1.1
  §4.4: unacknowledged PUBLISH packets are re-sent with their original packet id); or
- every reading it produced carries a parser identity (`id_field`/`timestamp`) that
  is already stored: the `msg_key` unique index refuses the row, and the writer says
  so through `on_commit(inserted=False)`.

Nothing else is: equal payloads with reused packet ids are separate readings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AckGroup", "DuplicateSummary", "LedgerHost", "Message", "Redeliveries", "digest", "log_duplicates"]

#: The event log gets at most one line about suppressed duplicates per this many seconds.
SUMMARY_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a connection, to be acknowledged once stored."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool


def digest(topic: str, payload: bytes) -> bytes:
    """A short fingerprint of a message's topic and payload (what a redelivery keeps)."""
    h = hashlib.blake2b(topic.encode("utf-8", "surrogatepass"), digest_size=16)
    h.update(b"\x00")
    h.update(payload)
    return h.digest()


class Redeliveries:
    """Messages committed while their connection was gone (no PUBACK sent): packet id -> fingerprint.

    The writer's thread adds them (`committed_unacked`); the actor's thread looks every
    QoS >= 1 arrival up (`arrived`). Any arrival of a packet id consumes its entry; it is
    a redelivery only when it carries DUP, the same fingerprint, and no other message
    with that packet id arrived since the committed one (so a broker that reused the id
    for a new message, equal payload or not, is never taken for redelivering).
    """

    __slots__ = ("_lock", "_held", "_last_conn")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[bytes, int]] = {}  # mid -> (fingerprint, connection it arrived on)
        self._last_conn: dict[int, int] = {}  # mid -> connection of its latest arrival

    def arrived(self, message: Message, conn: int) -> bool:
        """Note a QoS >= 1 arrival; True when it is the redelivery of a committed message."""
        with self._lock:
            held = self._held.pop(message.mid, None)
            previous = self._last_conn.get(message.mid)
            self._last_conn[message.mid] = conn
        if held is None or not message.dup:
            return False
        fingerprint, held_conn = held
        return previous == held_conn and fingerprint == digest(message.topic, message.payload)

    def committed_unacked(self, messages: Iterable[Message], conn: int) -> None:
        """Remember committed messages of connection `conn` whose PUBACK could not be sent."""
        with self._lock:
            for m in messages:
                if m.qos and self._last_conn.get(m.mid) == conn:  # not seen again since
                    self._held[m.mid] = (digest(m.topic, m.payload), conn)

    def clear(self) -> None:
        """The broker has no session for us (no session present): nothing will be redelivered."""
        with self._lock:
            self._held.clear()

    def __len__(self) -> int:
        return len(self._held)


class LedgerHost(Protocol):
    """What an AckGroup reports to once all its readings are committed (the writer's thread)."""

    def settled(self, messages: list[Message], inserted: list[bool], acked: bool, conn: int) -> None: ...


class AckGroup:
    """The acks of the messages of one drain, sent together once all their readings are committed.

    Each reading's `on_commit(inserted)` (the writer's thread, one thread at a time)
    counts down; the last one acknowledges every message of the group, so the paho
    thread is woken once per group rather than once per message, and hands the
    outcome (which messages had a reading inserted) to the host. Readings never
    committed (a replaced generation) leave the group unacknowledged: the broker
    redelivers, and a new generation stores them.
    """

    __slots__ = ("client", "host", "conn", "left", "messages", "inserted")

    def __init__(self, client: Any, host: LedgerHost, conn: int) -> None:
        self.client, self.host, self.conn = client, host, conn
        self.left = 0
        self.messages: list[Message] = []
        self.inserted: list[bool] = []

    def add(self, message: Message, readings: int) -> Callable[[bool], None]:
        """Register one message with `readings` readings; the on_commit to give each of them."""
        self.left += readings
        self.messages.append(message)
        self.inserted.append(False)
        return functools.partial(self._committed, len(self.messages) - 1)

    def _committed(self, index: int, inserted: bool) -> None:
        if inserted:
            self.inserted[index] = True
        self.left -= 1
        if self.left == 0:
            client = self.client
            acked = client is not None and client.ack_many([(m.mid, m.qos) for m in self.messages])
            self.host.settled(self.messages, self.inserted, acked, self.conn)


class DuplicateSummary:
    """Counts suppressed duplicates for the event log: at most one line per SUMMARY_INTERVAL_S."""

    __slots__ = ("_lock", "redelivered", "identity", "_since", "_reported_at")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.redelivered = 0
        self.identity = 0
        self._since: float | None = None
        self._reported_at = float("-inf")

    def add(self, redelivered: int = 0, identity: int = 0) -> None:
        """Count duplicates (any thread)."""
        with self._lock:
            if self._since is None:
                self._since = time.time()
            self.redelivered += redelivered
            self.identity += identity

    def due(self, now: float) -> str | None:
        """The summary line when one is due (and reset), else None."""
        with self._lock:
            if self._since is None or now - self._reported_at < SUMMARY_INTERVAL_S:
                return None
            total = self.redelivered + self.identity
            text = (
                f"{total} duplicate message{'s' if total != 1 else ''} suppressed since "
                f"{time.strftime('%H:%M:%S', time.gmtime(self._since))} UTC: {self.redelivered} broker "
                f"redelivery of a committed message, {self.identity} with a parser identity "
                "(id_field/timestamp) already stored"
            )
            self.redelivered = self.identity = 0
            self._since = None
            self._reported_at = now
            return text


def log_duplicates(log: logging.LoggerAdapter[Any] | logging.Logger, messages: Iterable[Message], why: str) -> None:
    """One debug line per suppressed message (cheap when debug is off)."""
    if log.isEnabledFor(logging.DEBUG):
        for m in messages:
            log.debug("duplicate suppressed on %s (packet id %d, dup=%s): %s", m.topic, m.mid, m.dup, why)
