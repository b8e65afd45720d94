"""A listing of every site does not hold back a command (issue 17), through waitress for real."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fieldwatch import views as views_mod
from fieldwatch.actors.icmp.prober import stop_shared_prober
from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.config.model import EndpointConfig, SiteConfig
from tests.harness import Harness, fast_policy
from tests.waiting import wait_for

_N = 200


@pytest.fixture
def daemon_http(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()
    stop_shared_prober()


def _request(url: str, method: str = "GET", token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
        return resp.status, json.loads(body) if body else None


@pytest.mark.parametrize("command", ["disable an endpoint", "delete another site"])
def test_command_during_a_listing_is_not_held_back(
    daemon_http: Harness, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    eps = tuple(EndpointConfig(f"h{i}", "icmp", IcmpOptions(f"127.0.{i // 250}.{1 + i % 250}", interval_s=1.0,
                                                            timeout_s=0.5)) for i in range(_N))
    other = SiteConfig("s2", endpoints=(EndpointConfig("o", "icmp", IcmpOptions("127.0.3.1", interval_s=1.0)),))
    daemon = daemon_http.start([SiteConfig("s1", endpoints=eps), other], policy=fast_policy(), http=True)
    daemon_http.wait_state("s1", "h0", "up", timeout=10.0)

    # The listing pauses inside its view building (after it read the controller and the
    # board) until released; the first view built after arming is the listing's.
    entered, release = threading.Event(), threading.Event()
    armed = [True]
    arm_lock = threading.Lock()
    real_view = views_mod.view_text

    def paused_view(*args: Any, **kwargs: Any) -> Any:
        with arm_lock:
            mine, armed[0] = armed[0], False
        if mine:
            entered.set()
            release.wait(30.0)
        return real_view(*args, **kwargs)

    monkeypatch.setattr(views_mod, "view_text", paused_view)
    listing: dict[str, Any] = {}

    def list_sites() -> None:
        listing["answer"] = _request(f"{daemon.url}/api/v1/sites")

    lister = threading.Thread(target=list_sites)
    lister.start()
    try:
        assert entered.wait(10.0), "the listing never started building views"
        started = time.monotonic()
        if command == "disable an endpoint":
            status, body = _request(f"{daemon.url}/api/v1/endpoints/s1/h1/disable", "POST", token="test-token")
        else:
            status, body = _request(f"{daemon.url}/api/v1/sites/s2", "DELETE", token="test-token")
        elapsed = time.monotonic() - started
        assert status in (202, 204)
        assert not listing, "the listing finished early: the test proves nothing"
        assert elapsed < 5.0, f"the command waited {elapsed:.1f}s for the listing"
        if command == "disable an endpoint":
            assert {e["name"]: e["enabled"] for e in body["endpoints"]}["h1"] is False
            assert daemon_http.state("s1", "h1") == "disabled"
    finally:
        release.set()
        lister.join(30.0)
    status, body = listing["answer"]
    assert status == 200
    site = next(s for s in body["items"] if s["name"] == "s1")
    assert len(site["endpoints"]) == _N
    assert all(e["state"] in ("up", "connecting", "disabled") for e in site["endpoints"])
    # After the listing, the command's effect is what every reader sees.
    if command == "disable an endpoint":
        wait_for(lambda: _request(f"{daemon.url}/api/v1/sites/s1")[1]["endpoints"][1]["state"] == "disabled",
                 5.0, what="h1 shown disabled")
    else:
        assert [s["name"] for s in _request(f"{daemon.url}/api/v1/sites")[1]["items"]] == ["s1"]
