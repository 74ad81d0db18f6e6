"""Read a Hydra multirun folder back: one ``JobResult`` per job, including jobs that failed or never ran."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from garbage_lit.records.folder import COMPLETED, FAILED, INTERRUPTED, MISSING, RUNNING, planned_jobs, read_metrics
from garbage_lit.records.predictions import read_predictions


@dataclass
class JobResult:
    """What one job of a sweep left behind."""

    num: int
    folder: Path
    status: str
    overrides: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def override_dict(self) -> dict[str, str]:
        return dict(o.split("=", 1) for o in self.overrides if "=" in o)

    @property
    def error(self) -> str | None:
        return self.metrics.get("error")

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return self.metrics.get("epochs", [])

    @property
    def final(self) -> dict[str, Any]:
        """The final evaluation of the job's chosen checkpoint: ``test/acc``, ``test/recall``, ..."""
        return self.metrics.get("final") or {}

    @cached_property
    def predictions(self) -> dict[str, bool] | None:
        """Whether the final test got each test image (by file) right; None without a predictions file."""
        return read_predictions(self.folder)

    @property
    def manifest_sha256(self) -> str | None:
        return (self.metrics.get("data") or {}).get("split_manifest_sha256")

    def rerun_command(self) -> str:
        """A single run that writes into this job's own folder, so the next report picks it up."""
        args = [*self.overrides, f"hydra.run.dir={self.folder}"]
        return "python -m garbage_lit.train " + " ".join(shlex.quote(a) for a in args)


def load_sweep(sweep_dir: str | Path) -> list[JobResult]:
    """Every job of the sweep in ``sweep_dir``, in job-number order, the missing ones included."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep folder (give the folder that holds multirun.yaml)")
    folders = {int(p.name): p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()}
    planned = planned_jobs(sweep_dir)
    if not folders and not planned:
        raise FileNotFoundError(f"{sweep_dir}: neither job folders (0/, 1/, ...) nor multirun.yaml; "
                                f"is this the folder of a `python -m garbage_lit.train -m ...` sweep?")
    numbers = set(folders) | set(range(len(planned)))
    if folders:
        numbers |= set(range(max(folders) + 1))  # gaps in the numbering are jobs that never started
    return [_load_job(n, folders.get(n, sweep_dir / str(n)), planned[n] if n < len(planned) else None)
            for n in sorted(numbers)]




def _load_job(num: int, folder: Path, planned: list[str] | None) -> JobResult:
    hydra_dir = folder / ".hydra"
    overrides = (list(OmegaConf.load(hydra_dir / "overrides.yaml")) if (hydra_dir / "overrides.yaml").is_file()
                 else planned or [])
    config = (OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"), resolve=False)
              if (hydra_dir / "config.yaml").is_file() else {})
    try:
        metrics = read_metrics(folder)
    except ValueError as exc:
        metrics = {"error": str(exc)}
    if metrics is None:
        return JobResult(num, folder, MISSING, overrides, config)
    status = metrics.get("status")
    if status not in (COMPLETED, FAILED, INTERRUPTED):
        status = INTERRUPTED if status == RUNNING else FAILED  # still "running": killed without a word
    return JobResult(num, folder, status, overrides, config, metrics)
