"""A zombie actor (its instance lost the site's lease) does not reconnect to its peer.

SPEC section 10: a former owner that wakes up after a freeze "does not reconnect to
their peers" (it would knock the new owner off the MQTT broker: same client_id). The
actor checks `EndpointContext.holds` before every (re)connection attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pykka
import pytest

from fieldwatch import states
from fieldwatch.actors.base import ChildContext
from fieldwatch.actors.connection import ConnectionActor, EndpointContext, Reconnect
from fieldwatch.actors.scheduler import Scheduler
from fieldwatch.ledger import EndpointLedger, Failure
from fieldwatch.policy import Backoff, ChildPolicy
from fieldwatch.storage.gateway import StorageGateway
from tests.waiting import wait_for


class Refused(ConnectionActor):
    """Every attempt fails at once; counts attempts."""

    kind = "probe"

    def __init__(self, child: ChildContext, endpoint: EndpointContext, attempts: list[float]) -> None:
        super().__init__(child, endpoint)
        self.attempts = attempts

    def connect(self) -> None:
        self.attempts.append(1.0)
        self.retry_later(Failure(states.DOWN, "connection refused"))


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    sched = Scheduler("test-zombie")
    sched.start()
    yield sched
    sched.stop()
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


def start(scheduler: Scheduler, held: threading.Event) -> tuple[pykka.ActorRef[Any], list[float]]:
    gateway = StorageGateway(max_queue=100_000)  # no writer: writes just queue
    ledger = EndpointLedger(gateway)
    ledger.register(1, site="s", name="e", kind="probe", enabled=True)
    inc = ledger.begin(1)
    policy = ChildPolicy(backoff=Backoff(initial_s=0.02, max_s=0.05, jitter=0.0))
    config: Any = SimpleNamespace(options=SimpleNamespace(), name="e", kind="probe")
    context = EndpointContext(1, "s", config, policy, ledger, gateway, scheduler, holds=held.is_set)
    attempts: list[float] = []
    child = ChildContext("e", "root/sites/s/e", inc.generation, 0, None, scheduler)
    return Refused.start(child, context, attempts), attempts


def test_an_actor_stops_reconnecting_once_the_lease_is_lost(scheduler: Scheduler) -> None:
    held = threading.Event()
    held.set()
    ref, attempts = start(scheduler, held)
    wait_for(lambda: len(attempts) >= 3, 10, what="reconnection attempts while the lease is held")
    held.clear()  # the instance froze, woke up, and its lease is gone
    actor = ref.proxy()
    wait_for(lambda: actor.reconnects_refused.get() >= 1, 10, what="a refused reconnection")
    made = len(attempts)
    ref.ask(Reconnect(actor.generation.get()))  # a late backoff timer: handled synchronously
    assert len(attempts) == made, "the zombie connected to its peer after losing the lease"
    assert actor.reconnects_refused.get() == 2
    held.set()  # (the runner would have stopped it; with the lease back it connects again)
    ref.ask(Reconnect(actor.generation.get()))
    assert len(attempts) == made + 1


def test_an_actor_never_connects_when_started_without_the_lease(scheduler: Scheduler) -> None:
    held = threading.Event()  # never held
    ref, attempts = start(scheduler, held)
    wait_for(lambda: ref.proxy().reconnects_refused.get() >= 1, 10, what="the first attempt refused")
    assert attempts == []
