"""OpcuaSession against the real simulation server in a subprocess."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fieldwatch.actors.opcua.session import NodeValue, OpcuaSession, SessionError
from fieldwatch.sim.opcua_server import NODES, SimOptions, SimServerThread
from tests.actors.opcua.opcua_sim import SimProcess, close, done, free_port
from tests.waiting import wait_for

TIMEOUT_S = 1.0


@pytest.fixture
def sessions() -> Iterator[Callable[..., OpcuaSession]]:
    """Make sessions; every one is closed after the test."""
    made: list[OpcuaSession] = []

    def make(url: str, **kwargs: object) -> OpcuaSession:
        kwargs.setdefault("timeout_s", TIMEOUT_S)
        session = OpcuaSession(url, **kwargs)  # type: ignore[arg-type]
        made.append(session)
        return session

    yield make
    for session in made:
        close(session)


def _connect_error(session: OpcuaSession) -> SessionError:
    with pytest.raises(SessionError) as info:
        done(session.connect_nowait())
    return info.value


def test_connect_read_and_subscribe(shared_sim: SimProcess, sessions: Callable[..., OpcuaSession]) -> None:
    session = sessions(shared_sim.url)
    offered = done(session.connect_nowait())
    assert offered == [shared_sim.url]
    assert session.path_offered()
    health = done(session.health_nowait())
    assert health.running and health.state_name == "Running"
    assert health.current_time is not None and abs(health.current_time - time.time()) < 5

    values = done(session.read_nowait([NODES["level"], NODES["counter"], NODES["pump"]]))
    assert [v.node_id for v in values] == [NODES["level"], NODES["counter"], NODES["pump"]]
    assert all(v.good and v.quality == "Good" for v in values)
    assert isinstance(values[0].value, float) and isinstance(values[1].value, int)
    assert isinstance(values[2].value, bool)
    assert values[0].source_time is not None and abs(values[0].source_time - time.time()) < 5

    received: queue.Queue[NodeValue] = queue.Queue()
    done(session.subscribe_nowait([NODES["level"]], 0.1, received.put))
    first = received.get(timeout=3)
    second = received.get(timeout=3)
    assert first.node_id == NODES["level"] and first.good and first.quality == "Good"
    assert second.source_time is not None and first.source_time is not None
    assert second.source_time > first.source_time


def test_unknown_node_is_a_bad_value_not_an_error(
    shared_sim: SimProcess, sessions: Callable[..., OpcuaSession]
) -> None:
    session = sessions(shared_sim.url)
    done(session.connect_nowait())
    missing, invalid, level = done(session.read_nowait(["ns=2;s=NoSuchNode", "not a node id", NODES["level"]]))
    assert (missing.good, missing.quality, missing.value) == (False, "BadNodeIdUnknown", None)
    assert (invalid.good, invalid.quality) == (False, "BadNodeIdInvalid")
    assert level.good
    received: queue.Queue[NodeValue] = queue.Queue()
    done(session.subscribe_nowait(["ns=2;s=NoSuchNode"], 0.2, received.put))
    reported = received.get(timeout=2)
    assert (reported.node_id, reported.quality, reported.good) == ("ns=2;s=NoSuchNode", "BadNodeIdUnknown", False)
    assert done(session.health_nowait()).running  # the session is still fine


def test_lenient_server_accepts_unoffered_path(shared_sim: SimProcess, sessions: Callable[..., OpcuaSession]) -> None:
    session = sessions(f"opc.tcp://127.0.0.1:{shared_sim.port}/no/such/path")
    assert done(session.connect_nowait()) == [shared_sim.url]
    assert not session.path_offered()
    assert done(session.read_nowait([NODES["counter"]]))[0].good


def test_strict_server_refuses_unoffered_path(
    sim_factory: Callable[..., SimProcess], sessions: Callable[..., OpcuaSession]
) -> None:
    sim = sim_factory("--strict-path")
    err = _connect_error(sessions(f"opc.tcp://127.0.0.1:{sim.port}/wrong/path"))
    assert err.failure.state == "faulty"
    assert err.failure.reason == "BadTcpEndpointUrlInvalid"
    assert err.failure.offered == (sim.url,)
    assert sim.url in err.failure.message
    assert done(sessions(sim.url).connect_nowait()) == [sim.url]  # the offered path is accepted


def test_unresolvable_host_is_faulty_with_resolver_error(sessions: Callable[..., OpcuaSession]) -> None:
    err = _connect_error(sessions("opc.tcp://no-such-host.invalid:4840"))
    assert err.failure.state == "faulty"
    assert err.failure.reason.startswith("[Errno ")
    assert "not known" in err.failure.reason or "No address" in err.failure.reason


def test_closed_port_is_down(sessions: Callable[..., OpcuaSession]) -> None:
    port = free_port()
    err = _connect_error(sessions(f"opc.tcp://127.0.0.1:{port}/"))
    assert err.failure.state == "down"
    assert "111" in err.failure.reason or "refused" in err.failure.reason.lower()


def test_invalid_url_is_faulty(sessions: Callable[..., OpcuaSession]) -> None:
    for url in ("http://127.0.0.1:4840/", "opc.tcp://127.0.0.1:notaport/", "opc.tcp:///path"):
        assert _connect_error(sessions(url)).failure.state == "faulty", url


def test_rejected_credentials_are_faulty(
    sim_factory: Callable[..., SimProcess], sessions: Callable[..., OpcuaSession]
) -> None:
    sim = sim_factory("--user", "alice:secret", "--no-anonymous")
    err = _connect_error(sessions(sim.url, username="alice", password="wrong"))
    assert err.failure.state == "faulty"
    assert err.failure.reason.startswith("Bad")
    assert "wrong" not in err.failure.message
    good = sessions(sim.url, username="alice", password="secret")
    done(good.connect_nowait())
    assert done(good.health_nowait()).running


def test_stopped_server_is_down_and_lost_callback_fires(
    sim_factory: Callable[..., SimProcess], sessions: Callable[..., OpcuaSession]
) -> None:
    sim = sim_factory()
    lost: list[str] = []
    session = sessions(sim.url, on_connection_lost=lost.append)
    done(session.connect_nowait())
    assert done(session.health_nowait()).running
    sim.stop()

    def health_fails() -> bool:
        try:
            done(session.health_nowait())
        except SessionError as err:
            return err.failure.state == "down"
        return False

    assert wait_for(health_fails, TIMEOUT_S + 1)
    assert wait_for(lambda: bool(lost), 3)
    sim.start()
    done(session.connect_nowait())
    assert done(session.health_nowait()).running


def test_frozen_server_is_down_within_timeout_and_recovers(
    sim_factory: Callable[..., SimProcess], sessions: Callable[..., OpcuaSession]
) -> None:
    sim = sim_factory()
    session = sessions(sim.url)
    done(session.connect_nowait())
    assert done(session.read_nowait([NODES["counter"]]))[0].good
    sim.freeze()
    started = time.monotonic()
    with pytest.raises(SessionError) as info:
        done(session.health_nowait())
    assert info.value.failure.state == "down"
    assert time.monotonic() - started < TIMEOUT_S + 1
    started = time.monotonic()
    with pytest.raises(SessionError):
        done(session.read_nowait([NODES["counter"]]))
    assert time.monotonic() - started < TIMEOUT_S + 1
    with pytest.raises(SessionError):  # still frozen: reconnecting fails, bounded
        done(session.connect_nowait())
    sim.thaw()
    assert done(session.connect_nowait()) == [sim.url]
    assert done(session.health_nowait()).running
    assert done(session.read_nowait([NODES["counter"]]))[0].good


def test_bad_after_gives_bad_quality_with_session_up(
    sim_factory: Callable[..., SimProcess], sessions: Callable[..., OpcuaSession]
) -> None:
    sim = sim_factory("--bad-after", "0.5")
    session = sessions(sim.url)
    done(session.connect_nowait())
    assert wait_for(lambda: not done(session.read_nowait([NODES["level"]]))[0].good, 5)
    value = done(session.read_nowait([NODES["level"]]))[0]
    assert value.quality == "BadNoCommunication"
    assert done(session.health_nowait()).running


def test_frozen_endpoint_does_not_slow_another(
    sim_factory: Callable[..., SimProcess], shared_sim: SimProcess, sessions: Callable[..., OpcuaSession]
) -> None:
    frozen_sim = sim_factory()
    frozen = sessions(frozen_sim.url, timeout_s=2.0)
    healthy = sessions(shared_sim.url)
    done(frozen.connect_nowait())
    done(healthy.connect_nowait())
    frozen_sim.freeze()
    errors: list[SessionError] = []

    def hammer_frozen() -> None:
        for _ in range(2):
            try:
                done(frozen.health_nowait())
            except SessionError as err:
                errors.append(err)
            try:
                done(frozen.connect_nowait())
            except SessionError as err:
                errors.append(err)

    worker = threading.Thread(target=hammer_frozen)
    worker.start()
    slowest = 0.0
    reads = 0
    while worker.is_alive():
        started = time.monotonic()
        assert done(healthy.read_nowait([NODES["counter"], NODES["level"]]))[0].good
        slowest = max(slowest, time.monotonic() - started)
        reads += 1
    worker.join()
    assert errors and all(err.failure.state == "down" for err in errors)
    assert reads > 50
    assert slowest < 0.25


def test_sim_server_runs_in_process_for_the_demo(sessions: Callable[..., OpcuaSession]) -> None:
    server = SimServerThread(SimOptions(port=free_port()))
    url = server.start()
    try:
        session = sessions(url)
        assert done(session.connect_nowait()) == [url]
        assert done(session.read_nowait([NODES["counter"]]))[0].good
    finally:
        server.stop()
    assert not server.running
