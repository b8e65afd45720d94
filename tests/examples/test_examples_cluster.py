"""examples/cluster/: two instance configs that load, differ only where they must and declare the
same sites on one PostgreSQL; the template unit runs `fieldwatch run` on each and is valid."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fieldwatch.cli import EXIT_CONFIG, _parser
from fieldwatch.config.loader import load_config
from tests.examples.examples_helpers import EXAMPLES

CLUSTER = EXAMPLES / "cluster"
CONFIGS = (CLUSTER / "fieldwatch-a.yaml", CLUSTER / "fieldwatch-b.yaml")
UNIT = CLUSTER / "fieldwatch@.service"


@pytest.fixture()
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDWATCH_TOKEN", "example-token-123")
    monkeypatch.setenv("SOUTH_MQTT_PASSWORD", "example-password")


def test_both_instances_load_and_share_their_sites_and_database(secrets: None) -> None:
    a, b = (load_config(str(path)) for path in CONFIGS)
    assert a.instance != b.instance
    assert a.cluster is not None and b.cluster is not None and a.cluster == b.cluster
    assert a.storage.url == b.storage.url and a.storage.url.startswith("postgresql://")
    assert a.sites == b.sites and len(a.sites) >= 2  # the same sites: either can run any of them
    assert a.http.listen != b.http.listen and a.logging.file != b.logging.file  # may share a machine


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_the_template_unit_runs_each_instance_config() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    args = _parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/fieldwatch/fieldwatch-%i.yaml"
    for letter in ("a", "b"):
        assert (CLUSTER / Path(args.config.replace("%i", letter)).name).is_file()
    assert str(EXIT_CONFIG) in service["RestartPreventExitStatus"].split()
    assert service["KillSignal"] == "SIGTERM"  # a stop drains: the leases are handed back


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    text = UNIT.read_text(encoding="utf-8")
    copy = tmp_path / "fieldwatch@a.service"
    copy.write_text(text.replace(_unit()["Service"]["ExecStart"], "/bin/true run"), encoding="utf-8")
    check = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    output = check.stdout + check.stderr
    for complaint in ("Unknown key", "Unknown section", "Failed to parse", "ignoring"):
        assert complaint not in output, output
