"""The ledger's rules: one generation counter, stale writes refused, one log line per failure, readers' freshness."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from fieldwatch import states
from fieldwatch.actors.icmp.stats import RttStats, fold_probe
from fieldwatch.actors.opcua.schema import OpcuaOptions
from fieldwatch.actors.supervisor import ChildRef, RestartChild
from fieldwatch.config.model import EndpointConfig, SiteConfig
from fieldwatch.ledger import EndpointLedger, Failure
from fieldwatch.policy import Backoff
from fieldwatch.status import effective_state, fresh_state
from fieldwatch.storage import writes as w
from tests.harness import Harness
from tests.ledger_helpers import new_ledger
from tests.waiting import wait_for

_BACKOFF = Backoff(initial_s=0.01, max_s=0.05, jitter=0.0)


def _ledger(generation: int = 0) -> EndpointLedger:
    ledger = new_ledger()
    ledger.register(1, site="s", name="e", kind="icmp", enabled=True, generation=generation)
    return ledger


def _queued(ledger: EndpointLedger) -> list[Any]:
    return list(ledger.storage._pending)  # noqa: SLF001 - no writer attached: what was submitted


def test_begin_continues_from_the_stored_generation_and_is_stored() -> None:
    ledger = _ledger(generation=41)
    assert ledger.begin(1, restarts=2).generation == 42
    assert ledger.begin(1).generation == 43
    assert [x for x in _queued(ledger) if isinstance(x, w.GenerationStarted)] == [
        w.GenerationStarted(endpoint_id=1, generation=42),
        w.GenerationStarted(endpoint_id=1, generation=43),
    ]
    status = ledger.get(1)
    assert status is not None and (status.generation, status.restarts) == (43, 2)
    ledger.register(1, site="s", name="e", kind="icmp", enabled=True, generation=5)  # an older stored value
    assert ledger.begin(1).generation == 44  # never goes back
    assert ledger.begin(99).generation == 0 and not ledger.begin(99).current()  # not registered: refused


def test_writes_of_an_older_generation_are_refused() -> None:
    ledger = _ledger()
    old = ledger.begin(1)
    old.transition(states.UP, "connected")
    new = ledger.begin(1)
    assert not old.current() and new.current()
    before = len(_queued(ledger))
    assert old.transition(states.DOWN, "hung actor woke up") is False
    old.data(123.0)
    old.alert("offline", "warning", "gone", "dev1")
    assert old.observe(fold_probe, ((0.001,), 0.0)) is False
    status = ledger.get(1)
    assert status is not None
    assert (status.state, status.reason, status.last_data_at, status.alerts, status.extra) == (
        states.UP, "connected", None, set(), None)  # fmt: skip
    assert len(_queued(ledger)) == before  # nothing stored either
    assert new.transition(states.DOWN, "no reply") is True
    assert ledger.rows([1])[0].state == states.DOWN  # type: ignore[union-attr]
    ledger.remove(1)
    assert new.transition(states.UP) is False and not new.current()


def test_error_once_on_entering_failure_never_per_retry_info_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    ledger = _ledger()
    inc = ledger.begin(1)
    inc.transition(states.CONNECTING, "starting")
    caplog.clear()  # the start's info line
    with caplog.at_level(logging.DEBUG, logger="fieldwatch.ledger"):
        delays = [inc.failed(Failure(states.DOWN, "connection refused"), _BACKOFF) for _ in range(5)]
        inc.failed(Failure(states.DOWN, "connection reset"), _BACKOFF)  # a new reason: stored, not an error line
    assert delays == [0.01, 0.02, 0.04, 0.05, 0.05]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["connecting -> down: connection refused"]
    assert not [r for r in caplog.records if r.levelno == logging.INFO]
    events = [x.event for x in _queued(ledger) if isinstance(x, w.EventRecord)]
    assert events == ["disabled->connecting", "connecting->down", "state"]  # one event per change, none per retry
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="fieldwatch.ledger"):
        inc.connected("answers")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["down -> up (recovered): answers"] and not [r for r in caplog.records if r.levelno > logging.INFO]
    alerts = [(type(x).__name__, x.condition) for x in _queued(ledger) if isinstance(x, (w.AlertOpen, w.AlertResolve))]
    assert alerts == [("AlertOpen", "down"), ("AlertResolve", "down"), ("AlertResolve", "stale"),
                      ("AlertResolve", "faulty")]  # fmt: skip
    assert ledger.get(1).alerts == set()  # type: ignore[union-attr]


def test_faulty_waits_the_maximum_backoff() -> None:
    inc = _ledger().begin(1)
    assert inc.failed(Failure(states.FAULTY, "host does not resolve"), _BACKOFF) == _BACKOFF.max_s


def test_disable_resolves_every_alert_and_is_stored() -> None:
    ledger = _ledger()
    inc = ledger.begin(1)
    inc.transition(states.DOWN, "no reply")
    inc.alert("offline", "warning", "device gone", "dev1")
    assert ledger.get(1).alerts == {("down", ""), ("offline", "dev1")}  # type: ignore[union-attr]
    start = len(_queued(ledger))
    ledger.disable(1, "endpoint disabled by command")
    status = ledger.get(1)
    assert status is not None
    assert (status.state, status.reason, status.enabled, status.alerts) == (
        states.DISABLED, "endpoint disabled by command", False, set())  # fmt: skip
    stored = _queued(ledger)[start:]
    assert [type(x).__name__ for x in stored] == ["StateChange", "EventRecord", "AlertResolve", "AlertResolve"]
    assert stored[1].event == "down->disabled"
    assert {(x.condition, x.subject) for x in stored[2:]} == {("down", ""), ("offline", "dev1")}


def test_starting_shows_connecting_and_the_actor_history_starts_from_disabled() -> None:
    ledger = _ledger()
    ledger.disable(1, "disabled")
    ledger.starting(1)
    status = ledger.get(1)
    assert status is not None and (status.state, status.enabled) == (states.CONNECTING, True)
    assert not [x for x in _queued(ledger) if isinstance(x, w.StateChange) and x.state == states.CONNECTING]
    inc = ledger.begin(1)
    assert inc.state == states.DISABLED
    inc.transition(states.CONNECTING, "starting")
    events = [x.event for x in _queued(ledger) if isinstance(x, w.EventRecord)]
    assert events[-1] == "disabled->connecting" and inc.state == states.CONNECTING


def test_readers_see_up_demoted_to_stale_when_data_is_old() -> None:
    ledger = _ledger()
    inc = ledger.begin(1)
    inc.fresh_within_s = 5.0
    inc.connected("connected")
    inc.data(1000.0)
    status = ledger.get(1)
    assert status is not None and status.state == states.UP  # the stored truth stays `up`
    assert effective_state(status, 1004.0) == (states.UP, "connected")
    state, reason = effective_state(status, 1010.0)
    assert state == states.STALE and reason is not None and "no data within 5s" in reason
    row = ledger.rows([1])[0]
    assert row is not None and effective_state(row, 1010.0)[0] == states.STALE
    light = ledger.light_snapshot()[0]
    assert fresh_state(light.state, light.reason, light.last_data_at, light.fresh_within_s, 1010.0)[0] == states.STALE


def test_observe_many_folds_extra_and_refuses_gone_or_older() -> None:
    ledger = _ledger()
    ledger.register(2, site="s", name="f", kind="icmp", enabled=True)
    ledger.begin(1)
    ledger.begin(1)  # generation 2
    ledger.begin(2)
    items = [(1, 2, 10.0, ((0.001, 0.003), 0.0)), (1, 1, 11.0, ((0.002,), 0.5)), (3, 1, None, ((), 1.0)),
             (2, 1, None, ((), 1.0))]  # fmt: skip
    assert ledger.observe_many(fold_probe, items) == [1, 2]
    one, two = ledger.get(1), ledger.get(2)
    assert one is not None and isinstance(one.extra, RttStats) and one.last_data_at == 10.0
    assert (one.extra.count, one.extra.last_rtt, one.extra.packet_loss) == (2, 0.003, 0.0)
    assert two is not None and two.last_data_at is None and two.extra.packet_loss == 1.0
    one.extra.count = 99  # readers get copies
    assert ledger.get(1).extra.count == 2  # type: ignore[union-attr]


def _plant(enabled: bool = True) -> list[SiteConfig]:
    return [SiteConfig("plant", enabled=enabled, endpoints=(
        EndpointConfig("plc", "opcua", OpcuaOptions("opc.tcp://127.0.0.1:1")),))]  # fmt: skip


def _stored_generation(harness: Harness) -> int:
    from fieldwatch.storage.models import Endpoint

    harness.flush()
    return int(Endpoint.get_by_id(harness.endpoint_id("plant", "plc")).generation)


def test_generations_continue_from_the_database_across_a_daemon_restart(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        harness.start(_plant())
        wait_for(lambda: harness.status("plant", "plc").state == states.DOWN, 10, what="plc down")
        first = harness.status("plant", "plc").generation
        assert first >= 1 and _stored_generation(harness) == first
        harness.stop()
        harness.start(_plant())
        wait_for(lambda: harness.status("plant", "plc").state == states.DOWN, 10, what="plc down again")
        second = harness.status("plant", "plc").generation
        assert second == first + 1 and _stored_generation(harness) == second
    finally:
        harness.stop()


def test_a_writer_restart_changes_no_generation(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        daemon = harness.start(_plant())
        wait_for(lambda: harness.status("plant", "plc").state == states.DOWN, 10, what="plc down")
        generation = harness.status("plant", "plc").generation
        assert daemon.root is not None and daemon.controller is not None
        storage_sup = daemon.root.ask(ChildRef("storage"), timeout=5)
        writer = storage_sup.ask(ChildRef("writer"), timeout=5)
        storage_sup.ask(RestartChild("writer"), timeout=10)
        wait_for(lambda: storage_sup.ask(ChildRef("writer"), timeout=5) not in (None, writer), 10, what="a new writer")
        wait_for(lambda: daemon.storage.stats().ready, 10, what="the new writer ready")
        assert harness.status("plant", "plc").generation == generation
        daemon.controller.restart_endpoint("plant", "plc")  # the next generation is the ledger's, stored as such
        wait_for(lambda: harness.status("plant", "plc").generation == generation + 1, 10, what="a new generation")
        wait_for(lambda: harness.status("plant", "plc").state == states.DOWN, 10, what="plc down")
        assert _stored_generation(harness) == generation + 1
        assert daemon.storage.stats().discarded_total == 0  # the new writer refused none of the new generation's writes
    finally:
        harness.stop()
