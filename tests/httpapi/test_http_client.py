"""The CLI client commands against a real waitress serving the app over fakes."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from fieldwatch.cli import main
from fieldwatch.client import format_table
from fieldwatch.http import AppDeps, HttpServer
from tests.httpapi.httpapi_fakes import TOKEN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_table(server: HttpServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--url", server.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["SITE", "ENDPOINT", "KIND", "STATE", "SINCE/AGE", "LAST", "DATA", "REASON"]
    assert out[1].split()[:4] == ["alpha", "plc", "opcua", "up"]
    assert len(out) == 4
    assert "\x1b[" not in "".join(out)  # not a terminal: no colours
    assert len({line.index("KIND") if "KIND" in line else line.index(line.split()[2]) for line in out}) == 1


def test_table_colours_and_ages() -> None:
    sites = [{"name": "s", "enabled": True, "endpoints": [
        {"name": "e", "kind": "icmp", "state": "down", "since": "2024-01-01T00:00:00Z", "last_data_at": None,
         "reason": "host unreachable"}]}]  # fmt: skip
    now = 1704067200.0 + 3725
    text = format_table(sites, colour=True, now=now)
    assert "\x1b[31mdown" in text and "1h02m" in text and "host unreachable" in text
    assert format_table([{"name": "empty", "enabled": False, "endpoints": []}], colour=False).splitlines()[1].split()[
        :4
    ] == ["empty", "-", "-", "disabled"]


def test_enable_disable(server: HttpServer, deps: AppDeps, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FIELDWATCH_URL", server.url)
    monkeypatch.setenv("FIELDWATCH_TOKEN", TOKEN)
    assert main(["disable", "alpha"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("site alpha: disabled") and "disabled" in out.splitlines()[2]
    assert main(["enable", "alpha"]) == 0
    assert capsys.readouterr().out.startswith("site alpha: enabled")
    assert deps.controller.calls == [("site_enabled", "alpha", False), ("site_enabled", "alpha", True)]  # type: ignore[attr-defined]
    assert main(["enable", "nope"]) == 1
    assert "404" in capsys.readouterr().err


def test_auth_errors_are_one_line(server: HttpServer, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("FIELDWATCH_TOKEN", raising=False)
    assert main(["disable", "alpha", "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "401" in err and "FIELDWATCH_TOKEN" in err
    assert main(["disable", "alpha", "--url", server.url, "--token", "wrong"]) == 1
    err = capsys.readouterr().err
    assert "403" in err and "wrong" not in err


def test_connection_refused_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["status", "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "connection refused" in err and url in err
    assert main(["status", "--url", "ftp://x"]) == 2
    assert main(["enable"]) == 2  # SITE missing
    assert main(["logs", "--lines", "-1"]) == 2


def test_logs(server: HttpServer, log_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open(log_file, "w") as f:
        f.write("2024-05-01T10:00:00.000Z INFO    x: [sites/alpha/plc] hello\n")
        f.write("2024-05-01T10:00:00.000Z ERROR   x: [sites/beta/broker] broken\n")
    assert main(["logs", "--url", server.url, "--level", "error"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2024-05-01T10:00:00.000Z ERROR   x: [sites/beta/broker] broken"]
    assert main(["logs", "--url", server.url, "--site", "alpha", "--lines", "5"]) == 0
    assert "hello" in capsys.readouterr().out


def test_events_and_follow(server: HttpServer, deps: AppDeps, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    q: Any = deps.queries
    q.add_event("alpha", "plc", "info", "first")
    q.add_event("alpha", "plc", "error", "second")
    assert main(["events", "--url", server.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines] == ["first", "second"]  # oldest first
    assert "alpha/plc" in lines[0]

    def later() -> None:
        time.sleep(0.5)
        q.add_event("alpha", "plc", "warning", "third")

    threading.Thread(target=later, daemon=True).start()
    monkeypatch.setattr("fieldwatch.client._FOLLOW_TIMEOUT_S", 0.5)  # gives up after the stream is stopped
    stopper = threading.Timer(1.5, server.stop)
    stopper.start()
    code = main(["events", "-f", "--url", server.url, "--limit", "1"])
    stopper.join()
    out = capsys.readouterr()
    assert [line.split()[-1] for line in out.out.splitlines()] == ["second", "third"]
    assert code == 1 and "stream" in out.err


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_colours_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from fieldwatch.client import _colour_enabled

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _colour_enabled(_Tty(True))  # type: ignore[arg-type]
    assert not _colour_enabled(_Tty(False))  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _colour_enabled(_Tty(True))  # type: ignore[arg-type]


def test_alerts_command_active_and_all(server: HttpServer, deps: AppDeps, capsys: pytest.CaptureFixture[str]) -> None:
    rows = deps.queries.rows["alerts"]  # type: ignore[attr-defined]
    assert main(["alerts", "--url", server.url]) == 0
    assert capsys.readouterr().out.strip() == "no active alerts"
    rows.append({"site": "alpha", "endpoint": "plc", "condition": "down", "severity": "critical", "message": "refused",
                 "triggered_at": "2024-01-01T00:00:00.000Z", "resolved_at": "2024-01-01T00:05:00.000Z", "active": False})
    rows.append({"site": "beta", "endpoint": "broker", "condition": "stale", "severity": "warning", "message": "quiet",
                 "triggered_at": "2024-01-02T00:00:00.000Z", "resolved_at": None, "active": True})  # fmt: skip
    assert main(["alerts", "--url", server.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "beta/broker" in out[1] and "stale" in out[1] and out[1].endswith("quiet")
    assert main(["alerts", "--all", "--url", server.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "RESOLVED" in out[0] and [line.split()[3] for line in out[1:]] == ["beta/broker", "alpha/plc"]
    assert " active " in out[1] and " ago " in out[2]
    assert deps.queries.calls[-1] == ("alerts", {"active": None, "since": None})  # type: ignore[attr-defined]


def test_table_shows_owners_in_a_cluster() -> None:
    sites = [
        {"name": "north", "owner": "gw-a", "enabled": True,
         "endpoints": [{"name": "e", "kind": "icmp", "state": "up", "since": None, "last_data_at": None}]},
        {"name": "south", "owner": None, "enabled": True,
         "endpoints": [{"name": "e", "kind": "icmp", "state": "down", "since": None, "last_data_at": None}]},
    ]  # fmt: skip
    lines = format_table(sites, colour=True, now=0.0, owners=True).splitlines()
    assert lines[0].split()[:5] == ["SITE", "OWNER", "ENDPOINT", "KIND", "STATE"]
    assert lines[1].split()[:3] == ["north", "gw-a", "e"]
    assert lines[2].split()[:2] == ["south", "-"]  # nobody holds its lease right now
    assert "\x1b[31mdown" in lines[2]  # the state column is still the one coloured
    assert "OWNER" not in format_table(sites, colour=False, now=0.0)
