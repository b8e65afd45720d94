"""Issue 6 acceptance: the OPC UA endpoint actor in a real daemon against real servers (subprocesses)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fieldwatch.actors.opcua.schema import NodeConfig, OpcuaOptions, ThresholdConfig
from fieldwatch.config.loader import parse_config_text
from fieldwatch.config.model import EndpointConfig, SiteConfig
from fieldwatch.sim.opcua_server import NODES
from fieldwatch.timeutil import parse_since
from tests.actors.opcua.opcua_sim import SimProcess, free_port
from tests.harness import Harness, fast_policy
from tests.waiting import wait_for

#: fast_policy(): health checks every 0.5 s, backoff 0.2 s .. 1 s.
HEALTH_INTERVAL_S = 0.5
TIMEOUT_S = 1.0
DETECT_S = HEALTH_INTERVAL_S + TIMEOUT_S + 1.0
RECOVER_S = 1.0 + TIMEOUT_S + 2.0  # the backoff in force (max 1 s), a connect, and slack


@pytest.fixture
def fw(tmp_path: Path) -> Iterator[Harness]:
    """A real daemon (no HTTP), stopped after the test."""
    h = Harness(tmp_path)
    yield h
    h.stop()


def _site(name: str, *endpoints: tuple[str, OpcuaOptions]) -> SiteConfig:
    return SiteConfig(name, endpoints=tuple(EndpointConfig(ep, "opcua", opts) for ep, opts in endpoints))


def _options(url: str, **kwargs: object) -> OpcuaOptions:
    nodes = kwargs.pop(
        "nodes",
        (
            NodeConfig(NODES["level"], "level", poll_s=0.3),
            NodeConfig(NODES["counter"], "counter", poll_s=0.3),
            NodeConfig(NODES["pump"], "pump", mode="subscribe", poll_s=0.2),
        ),
    )
    kwargs.setdefault("timeout_s", TIMEOUT_S)
    kwargs.setdefault("stale_after_s", 5.0)
    return OpcuaOptions(url=url, nodes=nodes, **kwargs)  # type: ignore[arg-type]


def _unix(value: object) -> float:
    """A reading's timestamp (RFC 3339 string or Unix seconds) as Unix seconds."""
    return value if isinstance(value, float) else parse_since(str(value))


def _events(h: Harness, site: str, endpoint: str, event: str) -> list[dict[str, object]]:
    return [e for e in h.events(site, endpoint) if e["event"] == event]


def test_reads_polled_and_subscribed_nodes_with_quality(fw: Harness, shared_sim: SimProcess) -> None:
    fw.start([_site("plant", ("plc", _options(shared_sim.url)))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    wait_for(lambda: len(fw.readings("plant", "plc", "counter")) >= 3, 5, what="counter readings")
    wait_for(lambda: fw.readings("plant", "plc", "pump"), 5, what="subscribed pump readings")
    level = fw.readings("plant", "plc", "level")[0]
    assert level["quality"] == "Good" and isinstance(level["value"], float)
    assert level["source_time"] is not None
    status = fw.status("plant", "plc")
    assert status.counters.get(("opcua_reads", "ok"), 0) >= 3
    assert status.last_data_at is not None and time.time() - status.last_data_at < 2
    assert isinstance(status.values[("level", "")], float)  # exported as fieldwatch_reading_value


def test_stopped_server_goes_down_and_comes_back(fw: Harness, sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    fw.start([_site("plant", ("plc", _options(sim.url)))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    sim.stop()
    started = time.monotonic()
    status = fw.wait_state("plant", "plc", "down", timeout=DETECT_S)
    assert time.monotonic() - started <= DETECT_S
    assert status.down_since is not None and status.reason
    sim.start()
    fw.wait_state("plant", "plc", "up", timeout=RECOVER_S)
    assert any(a["condition"] == "down" and not a["active"] for a in fw.alerts("plant", "plc"))


def test_frozen_server_goes_down_and_recovers(fw: Harness, sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory()
    fw.start([_site("plant", ("plc", _options(sim.url)))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    sim.freeze()
    started = time.monotonic()
    fw.wait_state("plant", "plc", "down", timeout=DETECT_S)
    assert time.monotonic() - started <= DETECT_S
    sim.thaw()
    fw.wait_state("plant", "plc", "up", timeout=RECOVER_S)


def test_unresolvable_host_is_faulty_closed_port_down(fw: Harness) -> None:
    closed = free_port()
    fw.start(
        [
            _site(
                "plant",
                ("nohost", _options("opc.tcp://no-such-host.invalid:4840")),
                ("closed", _options(f"opc.tcp://127.0.0.1:{closed}/")),
            )
        ],
        policy=fast_policy(),
    )
    status = fw.wait_state("plant", "nohost", "faulty", timeout=10)
    assert status.reason is not None and "[Errno" in status.reason
    status = fw.wait_state("plant", "closed", "down", timeout=10)
    assert status.reason is not None and ("111" in status.reason or "refused" in status.reason.lower())
    assert any(a["condition"] == "faulty" and a["active"] for a in fw.alerts("plant", "nohost"))


def test_unoffered_path_is_a_warning_event_once(fw: Harness, shared_sim: SimProcess) -> None:
    url = f"opc.tcp://127.0.0.1:{shared_sim.port}/not/offered"
    fw.start([_site("plant", ("plc", _options(url)))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    events = wait_for(lambda: _events(fw, "plant", "plc", "endpoint_path_not_offered"), 5, what="warning")
    assert len(events) == 1 and events[0]["level"] == "warning"
    assert shared_sim.url in str(events[0]["message"])


def test_strict_server_refusing_the_path_is_faulty_naming_offered(
    fw: Harness, sim_factory: Callable[..., SimProcess]
) -> None:
    sim = sim_factory("--strict-path")
    fw.start([_site("plant", ("plc", _options(f"opc.tcp://127.0.0.1:{sim.port}/wrong")))], policy=fast_policy())
    status = fw.wait_state("plant", "plc", "faulty", timeout=10)
    assert status.reason is not None and "BadTcpEndpointUrlInvalid" in status.reason and sim.url in status.reason


def test_bad_values_with_session_up_go_stale_alert_and_replacement(
    fw: Harness, sim_factory: Callable[..., SimProcess]
) -> None:
    sim = sim_factory("--bad-after", "1.0")
    opts = _options(sim.url, stale_after_s=1.5)
    fw.start([_site("plant", ("plc", opts))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    first_generation = fw.status("plant", "plc").generation
    fw.wait_state("plant", "plc", "stale", timeout=6)
    wait_for(
        lambda: any(a["condition"] == "stale" for a in fw.alerts("plant", "plc")), 3, what="stale alert"
    )
    bad = [r for r in fw.readings("plant", "plc", "level") if r["quality"] == "BadNoCommunication"]
    assert bad, "the bad status is stored as the reading's quality"
    wait_for(
        lambda: fw.status("plant", "plc").generation > first_generation, 8, what="the supervisor replacing it"
    )
    # The new generation is published as it is spawned, its restart count right after.
    wait_for(lambda: fw.status("plant", "plc").restarts >= 1, 5, what="the restart to be counted")
    assert any(e["event"] == "node_bad_status" for e in fw.events("plant", "plc"))


def test_unknown_node_reported_once_endpoint_stays_up(fw: Harness, shared_sim: SimProcess) -> None:
    nodes = (
        NodeConfig(NODES["counter"], "counter", poll_s=0.2),
        NodeConfig("ns=2;s=NoSuchNode", "ghost", poll_s=0.2),
    )
    fw.start([_site("plant", ("plc", _options(shared_sim.url, nodes=nodes)))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    wait_for(lambda: fw.status("plant", "plc").counters.get(("opcua_reads", "bad_status"), 0) >= 5, 5)
    assert fw.state("plant", "plc") == "up"
    reported = _events(fw, "plant", "plc", "node_bad_status")
    assert len(reported) == 1 and "BadNodeIdUnknown" in str(reported[0]["message"])
    ghost = fw.readings("plant", "plc", "ghost")
    assert len(ghost) == 1 and ghost[0]["quality"] == "BadNodeIdUnknown"


def test_threshold_opens_an_alert(fw: Harness, shared_sim: SimProcess) -> None:
    opts = _options(
        shared_sim.url,
        nodes=(NodeConfig(NODES["counter"], "counter", poll_s=0.2),),
        thresholds=(ThresholdConfig("counter", high=0.5, severity="critical"),),
    )
    fw.start([_site("plant", ("plc", opts))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    alert = wait_for(
        lambda: [a for a in fw.alerts("plant", "plc", active=True) if a["condition"] == "threshold"], 5
    )[0]
    assert alert["severity"] == "critical" and "counter" in str(alert["message"])


def test_frozen_endpoint_does_not_delay_another(
    fw: Harness, shared_sim: SimProcess, sim_factory: Callable[..., SimProcess]
) -> None:
    frozen = sim_factory()
    fast = (NodeConfig(NODES["counter"], "counter", poll_s=0.2),)
    fw.start(
        [
            _site(
                "plant",
                ("healthy", _options(shared_sim.url, nodes=fast)),
                ("stuck", _options(frozen.url, nodes=fast, timeout_s=2.0)),
            )
        ],
        policy=fast_policy(),
    )
    fw.wait_state("plant", "healthy", "up", timeout=10)
    fw.wait_state("plant", "stuck", "up", timeout=10)
    frozen.freeze()
    started = time.time()
    fw.wait_state("plant", "stuck", "down", timeout=5)

    def received() -> list[float]:
        times = (_unix(r["received_at"]) for r in fw.readings("plant", "healthy", "counter"))
        return sorted(t for t in times if t >= started)

    # ~4 s of 0.2 s polls while the other endpoint times out, fails and retries
    times = wait_for(lambda: (lambda t: t if len(t) >= 18 else None)(received()), 8, what="healthy readings")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) < 1.5, gaps  # a shared, blocked loop would show gaps of the 2 s timeout
    assert fw.state("plant", "healthy") == "up"


def test_sample_config_validates() -> None:
    sample = Path(__file__).resolve().parents[3] / "fieldwatch" / "actors" / "opcua" / "sample.yaml"
    config = parse_config_text(sample.read_text(), str(sample))
    endpoint = config.sites[0].endpoints[0]
    assert endpoint.kind == "opcua" and isinstance(endpoint.options, OpcuaOptions)
    assert endpoint.options.nodes[2].mode == "subscribe"


def test_subscribed_unchanged_value_is_not_stored_again(
    fw: Harness, sim_factory: Callable[..., SimProcess]
) -> None:
    sim = sim_factory("--freeze-values")
    nodes = (NodeConfig(NODES["pump"], "pump", mode="subscribe", poll_s=0.2),)
    # stale_after_s 2: the keep-alive read of the subscribed node runs every second
    fw.start([_site("plant", ("plc", _options(sim.url, nodes=nodes, stale_after_s=2.0)))], policy=fast_policy())
    fw.wait_state("plant", "plc", "up", timeout=10)
    wait_for(
        lambda: fw.status("plant", "plc").counters.get(("opcua_reads", "ok"), 0) >= 5, 8, what="keep-alive reads"
    )
    assert len(fw.readings("plant", "plc", "pump")) == 1
    assert fw.state("plant", "plc") == "up"  # the unchanged reads still prove the data fresh
