"""Logging from config: JSON and text lines carry the actor path; secrets never reach the file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from fieldwatch.actors.connection import PathLogger
from fieldwatch.logsetup import setup_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_json_lines_carry_the_path_and_hide_secrets(tmp_path: Any, restore_logging: None) -> None:
    log_file = tmp_path / "fw.log"
    setup_logging(level="info", file=str(log_file), fmt="json", console=False, secrets=["s3cret-token"])
    log = PathLogger(logging.getLogger("fieldwatch.test"), {"path": "sites/plant/plc"})
    log.error("connect failed with token %s", "s3cret-token")
    logging.getLogger("fieldwatch.test").debug("not at info level")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["path"] == "sites/plant/plc"
    assert lines[0]["level"] == "error"
    assert "s3cret-token" not in log_file.read_text()
    assert "<redacted>" in lines[0]["message"]


def test_text_lines_are_prefixed_and_the_file_rotates(tmp_path: Any, restore_logging: None) -> None:
    log_file = tmp_path / "fw.log"
    setup_logging(level="debug", file=str(log_file), fmt="text", console=False, max_bytes=2000, backups=2)
    log = PathLogger(logging.getLogger("fieldwatch.test"), {"path": "sites/net/router"})
    for i in range(100):
        log.info("line %d", i)
    text = log_file.read_text()
    assert "[sites/net/router] line 99" in text
    assert (tmp_path / "fw.log.1").exists()  # rotated
    assert not (tmp_path / "fw.log.3").exists()  # only `backups` old files kept


def test_the_in_memory_ring_has_the_lines_without_a_file(restore_logging: None) -> None:
    ring = setup_logging(level="info", file=None, fmt="text", console=False, secrets=["s3cret-token"])
    PathLogger(logging.getLogger("fieldwatch.test.ringsetup"), {"path": "sites/lutete/plc"}).warning("token s3cret-token refused")
    logging.getLogger("fieldwatch.test.ringsetup").debug("below the level")
    lines, last = ring.lines()
    assert lines[-1].endswith("[sites/lutete/plc] token <redacted> refused") and " WARNING " in lines[-1]
    assert "s3cret-token" not in "\n".join(lines) and "below the level" not in "\n".join(lines)
    assert ring.lines(after=last) == ([], last)
