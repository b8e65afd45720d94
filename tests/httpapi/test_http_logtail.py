"""Log tailing: record classification, filters, tail windows, following across rotation and truncation."""

from __future__ import annotations

import json
import os

import falcon.testing

from fieldwatch.http import create_app
from fieldwatch.http.logtail import LogFilter, LogFollower, tail
from tests.httpapi.httpapi_fakes import make_deps


def _text(level: str, message: str, path: str | None = None) -> str:
    prefix = f"[{path}] " if path else ""
    return f"2024-05-01T10:00:00.000Z {level:<7} fieldwatch.actors.connection: {prefix}{message}"


def _json(level: str, message: str, path: str | None = None) -> str:
    data = {"time": "2024-05-01T10:00:00.000Z", "level": level, "logger": "x", "message": message}
    if path:
        data["path"] = path
    return json.dumps(data)


def _write(path: str, lines: list[str], mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def test_filter_text_json_and_continuations() -> None:
    f = LogFilter(level="warning", site="alpha")
    assert f.line(_text("ERROR", "boom", "sites/alpha/plc")) is not None
    assert f.line("Traceback (most recent call last):") is not None  # continues the error above
    assert f.line(_text("INFO", "fine", "sites/alpha/plc")) is None
    assert f.line("  a continuation of an info line") is None
    assert f.line(_text("WARNING", "x", "sites/alphabet/plc")) is None  # not a prefix match
    assert f.line(_text("WARNING", "x", "sites/alpha")) is not None
    assert f.line(_text("CRITICAL", "no path")) is None
    item = f.line(_json("error", "j", "sites/alpha/broker"))
    assert item == {"line": _json("error", "j", "sites/alpha/broker"), "level": "error", "path": "sites/alpha/broker"}
    assert f.line(_json("debug", "j", "sites/alpha/broker")) is None
    assert LogFilter().line("{not json") == {"line": "{not json", "level": None, "path": None}


def test_tail_last_n_matching(log_file: str) -> None:
    lines = [_text("INFO" if i % 10 else "ERROR", f"line {i}", f"sites/s{i % 2}/e") for i in range(20000)]
    _write(log_file, lines)
    items, position = tail(log_file, 3, LogFilter())
    assert [i["line"] for i in items] == lines[-3:]
    assert position is not None and position.offset == os.path.getsize(log_file)
    errors, _ = tail(log_file, 5, LogFilter(level="error"))
    assert [i["line"] for i in errors] == [line for line in lines if "ERROR" in line][-5:]
    assert tail(log_file, 0, LogFilter())[0] == []
    assert tail(log_file + ".missing", 10, LogFilter()) == ([], None)


def test_tail_leaves_a_partial_line_for_the_follower(log_file: str) -> None:
    with open(log_file, "w") as f:
        f.write(_text("INFO", "done") + "\n" + "2024-05-01T10:00:00.000Z INFO    x: half")
    items, position = tail(log_file, 10, LogFilter())
    assert len(items) == 1
    follower = LogFollower(log_file, position)
    assert follower.read_lines() == []
    with open(log_file, "a") as f:
        f.write(" written\n")
    assert follower.read_lines() == ["2024-05-01T10:00:00.000Z INFO    x: half written"]
    follower.close()


def test_follow_across_rotation_and_truncation(log_file: str) -> None:
    _write(log_file, ["old 1"], mode="w")
    _, position = tail(log_file, 10, LogFilter())
    follower = LogFollower(log_file, position)
    _write(log_file, ["new 1", "new 2"])
    assert follower.read_lines() == ["new 1", "new 2"]
    _write(log_file, ["before rotation"])
    os.rename(log_file, log_file + ".1")
    assert follower.read_lines() == ["before rotation"]  # the file is gone: keep reading the old one
    _write(log_file + ".1", ["late write to the old file"])
    _write(log_file, ["after rotation"], mode="w")
    assert follower.read_lines() == ["late write to the old file", "after rotation"]
    with open(log_file, "w") as f:  # copytruncate
        f.truncate(0)
    _write(log_file, ["after truncation"])
    assert follower.read_lines() == ["after truncation"]
    follower.close()


def test_follow_a_file_that_appears_later(log_file: str) -> None:
    follower = LogFollower(log_file, None)
    assert follower.read_lines() == []
    _write(log_file, ["first"])
    assert follower.read_lines() == ["first"]
    follower.close()


def test_logs_route_in_process(log_file: str) -> None:
    deps = make_deps(log_file=log_file)
    client = falcon.testing.TestClient(create_app(deps))
    _write(log_file, [_text("INFO", f"n{i}", "sites/alpha/plc") for i in range(5)] + [_text("ERROR", "bad", None)])
    body = client.simulate_get("/api/v1/logs", params={"lines": "3"}).json
    assert [i["line"].rsplit(" ", 1)[-1] for i in body["items"]] == ["n3", "n4", "bad"]
    assert body["next"] is None
    only = client.simulate_get("/api/v1/logs", params={"site": "alpha", "level": "info"}).json["items"]
    assert len(only) == 5
    assert client.simulate_get("/api/v1/logs", params={"level": "error"}).json["items"][0]["level"] == "error"
    streamed = client.simulate_get("/api/v1/logs", params={"lines": "2", "follow": "1", "max_s": "0.3"})
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(x)["line"].rsplit(" ", 1)[-1] for x in streamed.text.splitlines() if x] == ["n4", "bad"]
    assert deps.streams.open == 0 and deps.streams.closed == 1


def test_logs_without_a_file_is_404() -> None:
    client = falcon.testing.TestClient(create_app(make_deps(log_file=None)))
    assert client.simulate_get("/api/v1/logs").status_code == 404


def test_stream_slots_are_bounded(log_file: str) -> None:
    deps = make_deps(log_file=log_file, max_streams=0)
    client = falcon.testing.TestClient(create_app(deps))
    resp = client.simulate_get("/api/v1/logs", params={"follow": "1"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert client.simulate_get("/api/v1/events", params={"follow": "true"}).status_code == 503
    assert deps.streams.open == 0
