"""SLURM time limits and preemption: checkpoint at the warning signal, requeue, continue in the same folder.

One mechanism acts: submitit's checkpoint/requeue protocol, which ``hydra/launcher=slurm`` already sets up.
submitit asks SLURM for a warning signal before the time limit (``--signal=USR2@<signal_delay_s>``) and
handles it: it re-pickles the job (hydra-submitit-launcher's ``checkpoint()``: the same Hydra job again),
calls ``scontrol requeue`` and exits, or fails the job once ``max_num_timeout`` time limits are used up.
:class:`RequeueOnSignal` holds that signal during training until the next batch boundary, saves
``checkpoints/requeue.ckpt`` and records the attempt in ``metrics.json``, then hands the signal to submitit
(outside training, e.g. while testing, it hands it on at once). Lightning's own SLURM
auto-requeue (``SLURMEnvironment(auto_requeue=True)``: ``hpc_ckpt_*.ckpt`` on SIGUSR1) is switched off in
these jobs (:func:`trainer_plugins`), so it can neither requeue the job a second time nor resume from a
checkpoint of its own. SLURM starts the requeued job with ``SLURM_RESTART_COUNT`` >= 1 and Hydra gives it
the same job folder, where :func:`requeue_point` continues from the newest checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from garbage_lit.callbacks.metrics_json import MetricsJson
from garbage_lit.callbacks.requeue import RequeueOnSignal, in_submitit_slurm_job, restart_count
from garbage_lit.records.folder import METRICS_FILE, run_status
from garbage_lit.run.resume import ResumePoint, newest_checkpoint

log = logging.getLogger(__name__)


def requeue_point(cfg: DictConfig) -> ResumePoint | None:
    """A job that SLURM started again continues its own folder from the newest checkpoint; None otherwise."""
    run_dir = Path(cfg.paths.output_dir)
    if restart_count() < 1 or not (run_dir / METRICS_FILE).is_file():
        return None
    log.info("SLURM restart %d of this job: continuing its folder %s", restart_count(), run_dir)
    return ResumePoint(run_dir, newest_checkpoint(run_dir), run_status(run_dir))


def trainer_plugins(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Trainer kwargs for a submitit SLURM job: the config's plugins plus Lightning's SLURM environment without
    its auto-requeue (submitit's protocol is the one that acts); no change elsewhere."""
    if not in_submitit_slurm_job():
        return {}
    from hydra.utils import instantiate
    from lightning_fabric.plugins.environments import SLURMEnvironment

    plugins = [instantiate(p) for p in trainer_cfg.get("plugins") or []]
    if not any(isinstance(p, SLURMEnvironment) for p in plugins):
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return {"plugins": plugins}


def requeue_callbacks(run_dir: str | Path, metrics_json: MetricsJson, resuming: bool) -> list[pl.Callback]:
    """[RequeueOnSignal] in a submitit SLURM job, [] elsewhere."""
    return [RequeueOnSignal(run_dir, metrics_json, resuming)] if in_submitit_slurm_job() else []
