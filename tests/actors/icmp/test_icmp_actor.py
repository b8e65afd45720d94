"""Acceptance tests of issue 5: the ICMP endpoint actor in a real daemon (harness)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldwatch.actors.icmp.prober import resolve, stop_shared_prober
from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.config.loader import parse_config_text
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.harness import Harness, fast_policy
from tests.netns import VethNamespace
from tests.waiting import wait_for


@pytest.fixture(autouse=True)
def _fresh_prober() -> Iterator[None]:
    yield
    stop_shared_prober()  # the daemon's actors are stopped by then (harness teardown)


def _site(options: IcmpOptions, site: str = "s1", name: str = "r") -> SiteConfig:
    return SiteConfig(site, endpoints=(EndpointConfig(name, "icmp", options),))


def test_loopback_goes_up_and_stores_probes(harness: Harness) -> None:
    harness.start([_site(IcmpOptions("127.0.0.1", interval_s=0.5, timeout_s=0.3, count=2))],
                  policy=fast_policy())
    status = harness.wait_state("s1", "r", "up", timeout=5.0)
    assert status.down_since is None and status.last_data_at is not None
    wait_for(lambda: len(harness.readings("s1", "r", name="packet_loss")) >= 2, 5.0,
             what="two stored probe results")
    rtt = harness.readings("s1", "r", name="rtt")[0]
    assert 0.0 <= float(rtt["value"]) < 0.3
    assert all(float(r["value"]) == 0.0 for r in harness.readings("s1", "r", name="packet_loss"))


def test_link_down_is_down_with_alert_then_up_resolves(
    harness: Harness, veth_ns: VethNamespace
) -> None:
    opts = IcmpOptions(veth_ns.peer_address, interval_s=1.0, timeout_s=0.5, down_after=2, up_after=1)
    harness.start([_site(opts)], policy=fast_policy())
    harness.wait_state("s1", "r", "up", timeout=5.0)
    assert harness.alerts("s1", "r", active=True) == []

    veth_ns.set_link(False)
    cut = time.monotonic()
    bound = opts.interval_s * opts.down_after + opts.timeout_s + 1.0
    status = harness.wait_state("s1", "r", "down", timeout=bound)
    assert status.down_since is not None and status.down_since >= time.time() - bound - 0.5
    wait_for(lambda: [a for a in harness.alerts("s1", "r", active=True) if a["condition"] == "down"],
             max(0.1, bound - (time.monotonic() - cut)) + 1.0, what="an active down alert")

    veth_ns.set_link(True)
    status = harness.wait_state("s1", "r", "up", timeout=opts.interval_s * opts.up_after + opts.timeout_s + 2.0)
    assert status.down_since is None
    wait_for(lambda: not harness.alerts("s1", "r", active=True), 5.0, what="the down alert resolved")
    (alert,) = [a for a in harness.alerts("s1", "r") if a["condition"] == "down"]
    assert alert["resolved_at"] is not None and alert["active"] is False
    events = [e["event"] for e in reversed(harness.events("s1", "r"))]
    assert "up->down" in events and events.index("down->up") > events.index("up->down")


def test_unresolvable_host_is_faulty_once_and_re_resolved_at_max_backoff(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "bad..name" fails inside the resolver (no DNS traffic leaves the machine); the spy
    # calls the real resolve() and records when the actor retries.
    calls: list[float] = []
    lock = threading.Lock()

    def spy(host: str, timeout_s: float) -> str:
        with lock:
            calls.append(time.monotonic())
        return resolve(host, timeout_s)

    monkeypatch.setattr("fieldwatch.actors.icmp.actor.resolve", spy)
    policy = fast_policy()  # backoff max_s = 1.0
    harness.start([_site(IcmpOptions("bad..name", interval_s=0.2, timeout_s=0.1))], policy=policy)
    status = harness.wait_state("s1", "r", "faulty", timeout=5.0)
    assert status.reason is not None and "'bad..name' does not resolve" in status.reason
    wait_for(lambda: len(calls) >= 4, 10.0, what="four resolution attempts")
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) >= policy.defaults.backoff.max_s * 0.9  # the maximum backoff, not the interval

    failures = [e for e in harness.events("s1", "r") if e["level"] == "error"]
    assert len(failures) == 1 and failures[0]["event"] == "connecting->faulty"
    assert [a["condition"] for a in harness.alerts("s1", "r", active=True)] == ["faulty"]
    assert harness.state("s1", "r") == "faulty"


def test_sample_config_validates() -> None:
    sample = Path(__file__).resolve().parents[3] / "fieldwatch" / "actors" / "icmp" / "sample.yaml"
    config = parse_config_text(sample.read_text(), str(sample))
    router, camera = config.sites[0].endpoints
    assert router.options == IcmpOptions("10.0.0.1")  # the sample shows the defaults
    assert isinstance(camera.options, IcmpOptions) and camera.options.count == 3
