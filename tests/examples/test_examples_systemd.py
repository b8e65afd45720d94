"""examples/fieldwatch.service: restarts on exit codes 1 and 3, not on 2; ICMP capability; valid unit."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fieldwatch.cli import EXIT_CONFIG, EXIT_RUNTIME, EXIT_SUPERVISOR, _parser
from tests.examples.examples_helpers import EXAMPLES

UNIT = EXAMPLES / "fieldwatch.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_restart_policy_follows_the_exit_codes() -> None:
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"  # any non-zero exit: 1 (runtime) and 3 (supervisor gave up)
    prevented = service["RestartPreventExitStatus"].split()
    assert str(EXIT_CONFIG) in prevented
    assert str(EXIT_RUNTIME) not in prevented and str(EXIT_SUPERVISOR) not in prevented
    assert float(service["RestartSec"]) >= 1


def test_service_runs_as_a_user_with_icmp_and_secrets() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["User"] and service["User"] != "root"
    assert "CAP_NET_RAW" in service["AmbientCapabilities"].split()
    assert service["EnvironmentFile"].lstrip("-") == "/etc/fieldwatch/env"
    assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"]
    assert service["NoNewPrivileges"] == "true" and service["PrivateTmp"] == "true"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_exec_start_is_a_valid_fieldwatch_command_line() -> None:
    argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert Path(argv[0]).name == "fieldwatch"
    args = _parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/fieldwatch/fieldwatch.yaml"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own parser knows every key and value (ExecStart pointed at /bin/true)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("systemd-analyze not installed: skipping the unit verification")
        pytest.skip("systemd-analyze not installed")
    text = UNIT.read_text(encoding="utf-8")
    exec_start = _unit()["Service"]["ExecStart"]
    copy = tmp_path / "fieldwatch.service"
    copy.write_text(text.replace(exec_start, "/bin/true run"), encoding="utf-8")
    check = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    output = check.stdout + check.stderr
    for complaint in ("Unknown key", "Unknown section", "Failed to parse", "ignoring"):
        assert complaint not in output, output
