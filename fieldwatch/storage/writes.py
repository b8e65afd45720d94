"""The write messages submitted to the StorageGateway and applied by the persistence actor.

Every write carries `endpoint_id` and the `generation` of the actor that produced it:
writes from a generation older than the endpoint's newest one are discarded (a
replaced, hung actor must not overwrite its successor's status), and so are writes
for a deleted endpoint. An EventRecord without an endpoint (endpoint_id None) is
never filtered.

Cluster (SPEC section 10, fencing): `epoch` is the site's lease epoch the write was made
under. `EndpointLedger.begin` puts it on `GenerationStarted` and the writer's index
carries it for every later write of that generation (one incarnation = one epoch), so
an actor's own records leave it None; a record made outside an incarnation (the
ledger's `disable`, `fault`) sets it itself. Outside a cluster it stays None and
nothing checks it. Every record is keyword-only: several neighbouring fields share a type
(`float | None`), so a positional mix-up would store silently wrong values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "SAMPLE_MAX_CHARS",
    "GenerationStarted",
    "StateChange",
    "Touch",
    "Counters",
    "EventRecord",
    "ReadingRecord",
    "AlertOpen",
    "AlertResolve",
    "TopicSeen",
    "ParseErrorRecord",
    "DeviceSeen",
    "Write",
]

#: Parse-error payload samples are cut to this many characters.
SAMPLE_MAX_CHARS = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationStarted:
    """A new actor generation of the endpoint started; older generations are ignored from now."""

    endpoint_id: int
    generation: int
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    """The endpoint entered `state` at `since` (applied in submission order per endpoint)."""

    endpoint_id: int
    generation: int
    state: str
    since: float
    reason: str | None
    down_since: float | None
    last_data_at: float | None
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Touch:
    """Fresh data arrived at `last_data_at`; only the latest per endpoint in a batch is written."""

    endpoint_id: int
    generation: int
    last_data_at: float
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Counters:
    """The endpoint's restart and reconnect counters (absolute values)."""

    endpoint_id: int
    generation: int
    restarts: int
    reconnects: int
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """One line of the connection event log. Names are filled from the endpoint if omitted."""

    endpoint_id: int | None
    generation: int
    time: float
    level: str
    event: str
    message: str
    exc_type: str | None = None
    attempt: int | None = None
    site_name: str | None = None
    endpoint_name: str | None = None
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingRecord:
    """A value to store (keyword-only); `msg_key` suppresses duplicates per endpoint.

    `aux_name`/`aux_num` carry a companion value measured together with this one
    (a ping probe: `rtt` with its `packet_loss`): both are one stored row, read back
    as two readings. The reading's time is `source_time` when given, else `received_at`.

    `on_commit(inserted)` is called (on the writer's thread; keep it quick) once the
    transaction holding this reading committed: `inserted` is True when the row was
    stored, False when an earlier reading of the endpoint with the same `msg_key`
    suppressed it. It is never called when the write is discarded (old generation,
    deleted endpoint).
    """

    endpoint_id: int
    generation: int
    name: str
    value_num: float | None
    value_text: str | None = None
    quality: str = "Good"
    source_time: float | None = None
    received_at: float
    device: str | None = None
    msg_key: str | None = None
    aux_name: str | None = None
    aux_num: float | None = None
    on_commit: Callable[[bool], None] | None = None
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertOpen:
    """Open an alert; a no-op while one is active for (endpoint, condition, subject)."""

    endpoint_id: int
    generation: int
    condition: str
    severity: str
    message: str
    time: float
    subject: str = ""
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertResolve:
    """Resolve the active alert for (endpoint, condition, subject), if any."""

    endpoint_id: int
    generation: int
    condition: str
    time: float
    subject: str = ""
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSeen:
    """`count` messages arrived on `topic` (upsert: counts add up, last_seen moves on)."""

    endpoint_id: int
    generation: int
    topic: str
    time: float
    count: int
    is_processable: bool
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseErrorRecord:
    """A payload a parser rejected; `sample` is cut to SAMPLE_MAX_CHARS at construction."""

    endpoint_id: int
    generation: int
    time: float
    topic: str | None
    parser: str
    error: str
    sample: str
    epoch: int | None = None

    def __post_init__(self) -> None:
        if len(self.sample) > SAMPLE_MAX_CHARS:
            object.__setattr__(self, "sample", self.sample[:SAMPLE_MAX_CHARS])


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSeen:
    """A device sent a message (online=True: last_seen moves) or went offline (flag only)."""

    endpoint_id: int
    generation: int
    device: str
    time: float
    online: bool
    epoch: int | None = None


Write = (
    GenerationStarted
    | StateChange
    | Touch
    | Counters
    | EventRecord
    | ReadingRecord
    | AlertOpen
    | AlertResolve
    | TopicSeen
    | ParseErrorRecord
    | DeviceSeen
)
