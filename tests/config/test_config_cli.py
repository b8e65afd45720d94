"""`fieldwatch check-config` in-process and as `python -m fieldwatch` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fieldwatch.cli import main
from tests.config.config_files import ConfigFiles

REPO = Path(__file__).resolve().parents[2]

GOOD = """
sites:
  - name: a
    endpoints:
      - {name: r, kind: icmp, host: 10.0.0.1}
      - {name: p, kind: opcua, url: "opc.tcp://10.0.0.5:4840"}
  - name: b
"""

BAD = """
http:
  listen: 127.0.0.1
sites:
  - name: a
    endpoints:
      - {name: r, kind: icmp, host: 10.0.0.1, intervall_s: 5}
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDWATCH_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fieldwatch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_check_config_ok_in_process(files: ConfigFiles, capsys: pytest.CaptureFixture[str]) -> None:
    files.write(GOOD)
    assert main(["check-config", "fieldwatch.yaml"]) == 0
    assert capsys.readouterr().out == "ok: fieldwatch.yaml (2 sites, 2 endpoints)\n"


def test_check_config_errors_in_process(files: ConfigFiles, capsys: pytest.CaptureFixture[str]) -> None:
    files.write(BAD)
    assert main(["check-config", "fieldwatch.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "fieldwatch.yaml:2: http.listen: must be HOST:PORT with PORT 0..65535 (0 picks a free port), "
        "got '127.0.0.1'",
        "fieldwatch.yaml:6: sites[0].endpoints[0].intervall_s: unknown key 'intervall_s' "
        "(did you mean 'interval_s'?)",
    ]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["check-config"]) == 2
    assert main(["no-such-command"]) == 2


def test_subprocess_exit_0(files: ConfigFiles) -> None:
    files.write(GOOD)
    result = _run("check-config", "fieldwatch.yaml", cwd=files.root)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "ok: fieldwatch.yaml (2 sites, 2 endpoints)\n", "")


def test_subprocess_exit_2(files: ConfigFiles) -> None:
    files.write(BAD)
    result = _run("check-config", "fieldwatch.yaml", cwd=files.root)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fieldwatch.yaml:2: http.listen: ")
    assert lines[1].startswith("fieldwatch.yaml:6: sites[0].endpoints[0].intervall_s: unknown key")


def test_subprocess_missing_file(tmp_path: Path) -> None:
    result = _run("check-config", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nope.yaml: cannot read: ")
