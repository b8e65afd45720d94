"""Keep what a soak run leaves behind, so a finding can be investigated after the run.

pytest deletes all but its last three temporary directories, and the report
alone cannot answer "what did the daemon do at that moment". Each run copies
its daemon log (every incarnation), the daemon's stdout, its config, the
broker's log, every sample and the fault log into
`tests/soak/runs/<mode>-<seed>-<UTC time>/` (git-ignored; FIELDWATCH_SOAK_KEEP_DIR
moves it), compressed, next to a copy of its report; the oldest runs of a mode
beyond the last five are removed.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import time
from pathlib import Path

from .runner import SoakRun

__all__ = ["keep_run"]

KEEP_ROOT = Path(__file__).resolve().parent / "runs"
_KEEP_LAST = 5


def keep_run(run: SoakRun, report: str) -> Path:
    """Copy the run's logs, samples and fault log (gzip) and its report; the folder they are in."""
    root = Path(os.environ.get("FIELDWATCH_SOAK_KEEP_DIR") or KEEP_ROOT)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(run.phases.started or time.time()))
    dest = root / f"{run.cfg.mode}-{run.cfg.seed}-{stamp}"
    dest.mkdir(parents=True, exist_ok=True)
    work = run.env.workdir
    files = [*sorted(work.glob("fieldwatch.log*")), work / "stdout.txt", work / "fieldwatch.yaml",
             work / "supervision.yaml", work / "broker" / "mosquitto.log"]
    for path in files:
        if path.is_file():
            name = path.name if path.parent == work else f"{path.parent.name}-{path.name}"
            _gzip_copy(path, dest / f"{name}.gz")
    with gzip.open(dest / "samples.jsonl.gz", "wt", encoding="utf-8") as out:
        for s in run.sampler.samples:
            row = dataclasses.asdict(s)
            for field in ("api", "metric_up", "metric_state"):
                row[field] = {"/".join(k): v for k, v in row[field].items()}
            out.write(json.dumps(row) + "\n")
    faults = [dataclasses.asdict(f) for f in run.log.faults]
    incarnations = [dataclasses.asdict(i) for i in run.env.incarnations]
    targets = [dataclasses.asdict(t) for t in run.env.targets.values()]
    windows = [dataclasses.asdict(w) for w in run.log.site_windows]
    (dest / "faults.json").write_text(json.dumps({"faults": faults, "incarnations": incarnations, "targets": targets,
                                                  "site_windows": windows, "phases": dataclasses.asdict(run.phases)},
                                                 indent=1))
    (dest / "REPORT.md").write_text(report, encoding="utf-8")
    _prune(root, run.cfg.mode)
    return dest


def _gzip_copy(src: Path, dst: Path) -> None:
    with src.open("rb") as handle, gzip.open(dst, "wb", compresslevel=6) as out:
        shutil.copyfileobj(handle, out)


def _prune(root: Path, mode: str) -> None:
    """Keep the newest `_KEEP_LAST` runs of `mode` (names sort by time within a seed; compare by mtime)."""
    runs = sorted((p for p in root.glob(f"{mode}-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-_KEEP_LAST]:
        shutil.rmtree(old, ignore_errors=True)
