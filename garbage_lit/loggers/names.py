"""How a job's run is named in every tracker: by what the job varies in its sweep (``optim=adam,lr=0.01``), in a
group named by the sweep folder, so a sweep reads the same in TensorBoard, MLflow and W&B."""

from __future__ import annotations

from pathlib import Path

from garbage_lit.records.folder import planned_jobs

MAX_RUN_NAME = 200  # characters; a folder name may hold 255 bytes


def varied_overrides() -> dict[str, str]:
    """This job's overrides whose values differ between the jobs of its sweep, in the sweep's order.

    Read from the sweep's ``multirun.yaml`` (the grid Hydra's basic sweeper expands); empty outside a
    multirun, and for sweepers that choose their jobs as they go.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra_cfg = HydraConfig.get()
    own = dict(_split(o) for o in hydra_cfg.overrides.task)
    values: dict[str, set[str]] = {}
    for job in planned_jobs(Path(hydra_cfg.sweep.dir)):
        for key, value in map(_split, job):
            values.setdefault(key, set()).add(value)
    return {key: own[key] for key, seen in values.items() if len(seen) > 1 and key in own}


def sweep_run_name() -> str:
    """The TensorBoard run (sub-folder of ``tensorboard/``) of this job: ``optim=adam,lr=0.01``; '' outside sweeps."""
    name = ",".join(f"{key}={value}" for key, value in varied_overrides().items())
    return name.replace("/", "_")[:MAX_RUN_NAME]


def tracker_names(run_dir: str | Path) -> tuple[str | None, str]:
    """The sweep folder (None outside a multirun) and the job's run name: what it varies, else its folder's name."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return (HydraConfig.get().sweep.dir if multirun else None), sweep_run_name() or Path(run_dir).name


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value
