"""The controller's commands on a real daemon (no HTTP), through its public methods only.

Each command is checked by what readers see afterwards: the endpoint views the API
serves, the supervision tree, and the events and alerts in storage. The site `plant`
has `router` (ICMP to the loopback: up) and `plc` (OPC UA to a closed port: down, with
an active alert).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fieldwatch.controller import Controller
from fieldwatch.errors import ConfigError, ConflictError, NotFoundError
from tests.harness import Harness, fast_policy
from tests.waiting import wait_for

TIMEOUT_S = 15.0


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _router(name: str = "router", host: str = "127.0.0.1") -> dict[str, Any]:
    return {"name": name, "kind": "icmp", "host": host, "interval_s": 0.5, "timeout_s": 0.5}


def _plant() -> dict[str, Any]:
    plc = {"name": "plc", "kind": "opcua", "url": f"opc.tcp://127.0.0.1:{_closed_port()}", "timeout_s": 1.0}
    return {"name": "plant", "endpoints": [_router(), plc]}


@pytest.fixture
def fw(tmp_path: Path) -> Iterator[Harness]:
    """A daemon with the site `plant` created by command, `router` up and `plc` down with an alert."""
    h = Harness(tmp_path)
    h.start([], policy=fast_policy())
    _controller(h).create_site(_plant())
    h.wait_state("plant", "router", "up", timeout=TIMEOUT_S)
    h.wait_state("plant", "plc", "down", timeout=TIMEOUT_S)
    wait_for(lambda: _active_alerts(h, "plc"), TIMEOUT_S, what="the plc's down alert")
    yield h
    h.stop()


def _controller(h: Harness) -> Controller:
    assert h.daemon is not None and h.daemon.controller is not None
    return h.daemon.controller


def _view(h: Harness, endpoint: str, site: str = "plant") -> dict[str, Any]:
    return _controller(h).get_endpoint(site, endpoint)


def _running(h: Harness, endpoint: str, site: str = "plant") -> bool:
    """Whether the supervision tree has a child for the endpoint (an actor runs for it)."""
    assert h.daemon is not None
    return h.daemon.tree.get(f"root/sites/{site}/{endpoint}") is not None


def _active_alerts(h: Harness, endpoint: str, site: str = "plant") -> list[dict[str, Any]]:
    return h.alerts(site, endpoint, active=True)


def _events(h: Harness, endpoint: str, site: str = "plant") -> list[tuple[str, str]]:
    return [(e["event"], e["message"]) for e in h.events(site, endpoint)]


def _probes_continue(h: Harness) -> None:
    """Wait until the router stores data again: time passed with actors running."""
    before = _view(h, "router")["last_data_at"]
    wait_for(lambda: _view(h, "router")["last_data_at"] != before, TIMEOUT_S, what="a newer router probe")


def test_disabling_an_endpoint_stops_its_actor_and_resolves_its_alerts(fw: Harness) -> None:
    controller = _controller(fw)
    first = _view(fw, "plc")["generation"]
    assert _running(fw, "plc")

    site = controller.set_endpoint_enabled("plant", "plc", False)
    plc = next(e for e in site["endpoints"] if e["name"] == "plc")
    assert (plc["state"], plc["enabled"]) == ("disabled", False)
    wait_for(lambda: not _running(fw, "plc"), TIMEOUT_S, what="the plc's actor to stop")
    assert _active_alerts(fw, "plc") == []
    assert any(a["condition"] == "down" and not a["active"] for a in fw.alerts("plant", "plc"))
    assert ("down->disabled", "endpoint disabled by command") in _events(fw, "plc")
    _probes_continue(fw)
    # nothing brought it back meanwhile, and its neighbour was not touched
    assert (_view(fw, "plc")["state"], _running(fw, "plc")) == ("disabled", False)
    assert _view(fw, "router")["state"] == "up" and _running(fw, "router")

    controller.set_endpoint_enabled("plant", "plc", True)
    fw.wait_state("plant", "plc", "down", timeout=TIMEOUT_S)
    assert _running(fw, "plc") and _view(fw, "plc")["enabled"]
    assert _view(fw, "plc")["generation"] > first
    wait_for(lambda: _active_alerts(fw, "plc"), TIMEOUT_S, what="the down alert to open again")


def test_disabling_a_site_stops_every_actor_and_enabling_starts_new_generations(fw: Harness) -> None:
    controller = _controller(fw)
    before = {name: _view(fw, name)["generation"] for name in ("router", "plc")}

    site = controller.set_site_enabled("plant", False)
    assert site["enabled"] is False
    assert {e["name"]: e["state"] for e in site["endpoints"]} == {"router": "disabled", "plc": "disabled"}
    wait_for(lambda: not _running(fw, "router") and not _running(fw, "plc"), TIMEOUT_S, what="the actors to stop")
    assert _active_alerts(fw, "plc") == []
    assert ("up->disabled", "site disabled by command") in _events(fw, "router")
    assert controller.site_flags() == {"plant": False}

    controller.set_site_enabled("plant", True)
    fw.wait_state("plant", "router", "up", timeout=TIMEOUT_S)
    fw.wait_state("plant", "plc", "down", timeout=TIMEOUT_S)
    after = {name: _view(fw, name)["generation"] for name in ("router", "plc")}
    assert all(after[name] > before[name] for name in before), (before, after)
    assert controller.get_site("plant")["enabled"] is True


def test_restarting_an_endpoint_starts_a_new_generation_of_it_only(fw: Harness) -> None:
    controller = _controller(fw)
    router, plc = _view(fw, "router")["generation"], _view(fw, "plc")["generation"]

    controller.restart_endpoint("plant", "router")
    wait_for(lambda: _view(fw, "router")["generation"] > router, TIMEOUT_S, what="a new router generation")
    fw.wait_state("plant", "router", "up", timeout=TIMEOUT_S)
    assert _view(fw, "plc")["generation"] == plc

    controller.set_endpoint_enabled("plant", "plc", False)
    controller.restart_endpoint("plant", "plc")  # disabled: nothing to restart, nothing started
    _probes_continue(fw)
    assert (_view(fw, "plc")["state"], _running(fw, "plc")) == ("disabled", False)


def test_create_replace_and_delete_a_site_leave_the_others_alone(fw: Harness) -> None:
    controller = _controller(fw)
    plant = _view(fw, "router")["generation"]

    created = controller.create_site({"name": "lab", "endpoints": [_router("a", "127.0.0.2")]})
    assert [e["name"] for e in created["endpoints"]] == ["a"]
    fw.wait_state("lab", "a", "up", timeout=TIMEOUT_S)
    assert controller.site_names() == ["lab", "plant"]
    with pytest.raises(ConflictError):
        controller.create_site({"name": "lab", "endpoints": [_router("a")]})

    replaced = controller.replace_site("lab", {"endpoints": [_router("b", "127.0.0.3")]})
    assert [e["name"] for e in replaced["endpoints"]] == ["b"]
    fw.wait_state("lab", "b", "up", timeout=TIMEOUT_S)
    assert not _running(fw, "a", site="lab")
    with pytest.raises(NotFoundError):
        controller.get_endpoint("lab", "a")
    with pytest.raises(ConfigError):
        controller.replace_site("lab", {"name": "other", "endpoints": []})

    controller.delete_site("lab")
    assert controller.site_names() == ["plant"]
    with pytest.raises(NotFoundError):
        controller.get_site("lab")
    wait_for(lambda: not _running(fw, "b", site="lab"), TIMEOUT_S, what="the lab's actor to stop")
    assert [s["name"] for s in controller.list_sites()] == ["plant"]
    # the other site ran on undisturbed
    assert _view(fw, "router")["generation"] == plant and _view(fw, "router")["state"] == "up"


def test_commands_on_unknown_sites_and_endpoints_are_not_found(fw: Harness) -> None:
    controller = _controller(fw)
    commands = [
        lambda: controller.set_topic_active("plant", "nope", "a/b", True),
        lambda: controller.set_topic_active("nowhere", "router", "a/b", True),
        lambda: controller.set_endpoint_enabled("plant", "nope", False),
        lambda: controller.restart_endpoint("plant", "nope"),
        lambda: controller.set_site_enabled("nowhere", False),
        lambda: controller.replace_site("nowhere", {"endpoints": []}),
        lambda: controller.delete_site("nowhere"),
        lambda: controller.get_endpoint("plant", "nope"),
    ]
    for command in commands:
        with pytest.raises(NotFoundError):
            command()
    # nothing changed
    assert controller.site_names() == ["plant"]
    assert {e["name"]: e["enabled"] for e in controller.get_site("plant")["endpoints"]} == {"router": True, "plc": True}
