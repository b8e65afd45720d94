"""The chaos soak: the daemon as a process, real peers, seeded random faults, invariants with counts.

`test_soak_short` (default suite, about two minutes of faults) writes its report into the
kept run folder, and to tests/soak/REPORT-short.md only with FIELDWATCH_SOAK_RECORD=1 (so a
test run does not rewrite a tracked file); `test_soak_long` (`tox -e soak`, marker `soak`,
FIELDWATCH_SOAK_SECONDS long, default 1800) writes tests/soak/REPORT.md. Both
take FIELDWATCH_SOAK_SEED; the report names the seed and the command. Each run's
daemon log, samples and fault log are kept under tests/soak/runs/ (see keep.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .invariants import check_all
from .keep import keep_run
from .logscan import read_log
from .report import render, summary_line
from .runner import SoakConfig, run_soak

HERE = Path(__file__).resolve().parent
LONG_SECONDS = float(os.environ.get("FIELDWATCH_SOAK_SECONDS", "1800"))


def _soak(cfg: SoakConfig, workdir: Path) -> None:
    run = run_soak(cfg, workdir)
    lines, bad = read_log(run.env.workdir)
    invariants, detections, info = check_all(run, lines)
    text = render(run, invariants, detections, info, lines, bad)
    if run.error:
        text += f"\n## The run broke\n\n```\n{run.error}\n```\n"
    kept = keep_run(run, text)
    text += (f"\nKept after the run (daemon log, samples, fault log, broker log; git-ignored): "
             f"`{kept.relative_to(HERE.parent.parent) if kept.is_relative_to(HERE.parent.parent) else kept}`\n")
    cfg.report_path.write_text(text, encoding="utf-8")
    summary = summary_line(run, invariants)
    print(f"soak: {summary}; report {cfg.report_path}; logs and samples kept in {kept}")
    if any(not i.ok for i in invariants):
        print(text)
        pytest.fail(f"chaos soak (seed {cfg.seed}): {summary}; see {cfg.report_path}", pytrace=False)


def test_soak_short(tmp_path: Path, soak_seed: int, soak_backend: str) -> None:
    """About 100 s of faults on SQLite; fails on any broken invariant (report: REPORT-short.md)."""
    cfg = SoakConfig(
        seed=soak_seed,
        fault_seconds=float(os.environ.get("FIELDWATCH_SOAK_SHORT_SECONDS", "95")),
        mode="short",
        backend=soak_backend,
        report_path=(HERE if os.environ.get("FIELDWATCH_SOAK_RECORD") else tmp_path) / "REPORT-short.md",
        command=f"FIELDWATCH_SOAK_SEED={soak_seed} .venv/bin/python -m pytest tests/soak -q -s -k short",
    )
    _soak(cfg, tmp_path / "soak")


@pytest.mark.soak
@pytest.mark.timeout(LONG_SECONDS + 900)
def test_soak_long(tmp_path: Path, soak_seed: int, soak_backend: str) -> None:
    """FIELDWATCH_SOAK_SECONDS (default 1800) of faults (report: REPORT.md)."""
    cfg = SoakConfig(
        seed=soak_seed,
        fault_seconds=LONG_SECONDS,
        mode="long",
        backend=soak_backend,
        report_path=HERE / "REPORT.md",
        command=(f"FIELDWATCH_SOAK_SECONDS={LONG_SECONDS:g} FIELDWATCH_SOAK_SEED={soak_seed} "
                 f"FIELDWATCH_SOAK_BACKEND={soak_backend} .venv/bin/python -m pytest -m soak tests/soak -q -s"),
        warmup_s=20.0,
        quiet_s=20.0,
        no_daemon_kill_last_s=min(300.0, LONG_SECONDS / 4),
        long_outages=max(1, int(LONG_SECONDS // 300)),
        long_hold_s=(60.0, 150.0),
    )
    _soak(cfg, tmp_path / "soak")
