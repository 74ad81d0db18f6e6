"""What a job needs when a launcher runs it inside a sweep: its own GPU, and DataLoader workers that start."""

from __future__ import annotations

import logging
import multiprocessing

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from garbage_lit.sweeps.devices import assign_job_gpu

log = logging.getLogger(__name__)


def use_platform_start_method() -> str | None:
    """Give DataLoader workers the platform's process start method back when a launcher replaced it.

    joblib's loky workers (``hydra/launcher=parallel``) install loky's start method as the default, and
    torch's DataLoader cannot start its workers with it ("'Process' object has no attribute 'env'",
    pytorch/pytorch#44687). Returns the method set, or None when nothing needed changing.
    """
    if multiprocessing.get_start_method(allow_none=True) != "loky":
        return None
    method = multiprocessing.get_all_start_methods()[0]  # the platform default comes first
    multiprocessing.set_start_method(method, force=True)
    log.info("multiprocessing start method loky -> %s, so DataLoader workers can start", method)
    return method


def prepare_sweep_job(cfg: DictConfig) -> None:
    """Call at the start of a Hydra job: in a multirun, one GPU per job and working DataLoader workers."""
    hydra_cfg = HydraConfig.get()
    use_platform_start_method()
    assign_job_gpu(cfg, hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None)
