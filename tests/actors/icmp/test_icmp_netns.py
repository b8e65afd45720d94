"""The prober against a real far host in a network namespace: answers, silence, isolation."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from fieldwatch.actors.icmp.prober import Prober, ProbeResult
from tests.actors.icmp.icmp_helpers import ResultSink
from tests.netns import VethNamespace
from tests.waiting import wait_for

_REPO = Path(__file__).resolve().parents[3]


def _probe_once(prober: Prober, address: str, timeout_s: float = 1.0) -> ProbeResult:
    sink = ResultSink()
    prober.submit(address, count=1, timeout_s=timeout_s, callback=sink)
    return sink.wait(1, timeout_s + 5.0)[0]


def _until_ok(prober: Prober, address: str, deadline_s: float) -> ProbeResult:
    return wait_for(lambda: (r := _probe_once(prober, address, 0.5)).ok and r, deadline_s, 0.0, what=f"{address} to answer")


def test_link_down_times_out_and_link_up_answers(prober: Prober, veth_ns: VethNamespace) -> None:
    assert _until_ok(prober, veth_ns.peer_address, 10.0).ok

    veth_ns.set_link(False)
    started = time.monotonic()
    down = _probe_once(prober, veth_ns.peer_address, timeout_s=0.5)
    assert (down.sent, down.received, down.loss, down.ok) == (1, 0, 1.0, False)
    assert down.rtt_avg is None
    assert time.monotonic() - started < 0.5 + 1.0  # the timeout, not later

    veth_ns.set_link(True)
    back = _until_ok(prober, veth_ns.peer_address, 10.0)
    assert back.ok and back.loss == 0.0


def test_silent_host_does_not_delay_loopback(prober: Prober, veth_ns: VethNamespace) -> None:
    veth_ns.set_link(False)
    dead = ResultSink()
    for _ in range(20):
        prober.submit(veth_ns.peer_address, count=3, timeout_s=2.0, callback=dead, interval_s=0.2)
    for i in range(10):
        live = ResultSink()
        submitted = time.monotonic()
        prober.submit(f"127.0.0.{i + 1}", count=1, timeout_s=2.0, callback=live)
        (result,) = live.wait(1, 5.0)
        assert result.ok
        assert live.arrived[0] - submitted < 0.25
    assert dead.results == []  # still waiting for their timeout
    results = dead.wait(20, 10.0)
    assert all(r.sent == 3 and r.received == 0 and r.loss == 1.0 for r in results)


def test_send_error_is_a_result_not_an_exception(prober: Prober, veth_ns: VethNamespace) -> None:
    # Host end down: its route goes, the safety `unreachable` route answers EHOSTUNREACH.
    veth_ns.set_link(False, side="host")
    result = _probe_once(prober, veth_ns.peer_address)
    assert (result.sent, result.received, result.loss) == (0, 0, 1.0)
    assert result.error is not None and "send failed" in result.error


_SCRIPT = """
import json, threading
from fieldwatch.actors.icmp.prober import Prober
prober = Prober(privileged=False)
prober.start()
done = threading.Event()
out = {}
def cb(r):
    out.update(sent=r.sent, received=r.received, error=r.error)
    done.set()
prober.submit("127.0.0.1", count=3, timeout_s=1.0, callback=cb, interval_s=0.05)
done.wait(10)
out["sockets"] = prober.family_sockets
prober.stop()
print(json.dumps(out))
"""


def _run_unprivileged(ns: VethNamespace) -> dict[str, object]:
    env = f"PYTHONPATH={_REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    proc = ns.run("env", env, sys.executable, "-c", _SCRIPT)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_unprivileged_datagram_sockets(veth_ns: VethNamespace) -> None:
    # A fresh namespace has ping_group_range "1 0": datagram ICMP sockets are refused.
    refused = _run_unprivileged(veth_ns)
    assert refused["sent"] == 0 and "cannot open an ICMPv4 socket" in str(refused["error"])
    veth_ns.run("sysctl", "-w", "net.ipv4.ping_group_range=0 2147483647")
    allowed = _run_unprivileged(veth_ns)
    assert allowed == {"sent": 3, "received": 3, "error": None, "sockets": 1}
