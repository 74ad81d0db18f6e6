"""Per-launch set-up of a job: its own GPU inside a sweep, DataLoader workers that start, DDP ranks in its folder."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

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


def gpu_for_job(job_num: int, num_gpus: int) -> int:
    """Job N trains on GPU N mod #GPUs, so n jobs at once on n GPUs each get their own."""
    if num_gpus < 1:
        raise ValueError("gpu_for_job needs at least one visible GPU")
    return job_num % num_gpus


def assign_job_gpu(cfg: DictConfig, job_num: int | None, num_gpus: int | None = None) -> int | None:
    """Point ``trainer.devices`` of a sweep job at its own GPU; return that GPU (None: left unchanged).

    Only jobs of a multirun (``job_num`` given) on a machine with several visible GPUs, with the
    default single device on an automatic or GPU accelerator, are moved: an explicit
    ``trainer.devices`` (a list, or several devices) is the user's choice and is kept.
    """
    if job_num is None or str(cfg.trainer.get("accelerator", "auto")) not in ("auto", "gpu", "cuda"):
        return None
    if cfg.trainer.get("devices", 1) not in (1, "1"):
        return None
    if num_gpus is None:
        import torch

        num_gpus = torch.cuda.device_count()
    if num_gpus < 2:
        return None
    gpu = gpu_for_job(job_num, num_gpus)
    with open_dict(cfg):
        cfg.trainer.devices = [gpu]
    log.info("sweep job %d trains on GPU %d of %d", job_num, gpu, num_gpus)
    return gpu


def share_output_dir_with_ddp_ranks(output_dir: str | Path) -> None:
    """Make Lightning relaunch DDP ranks 1.. with ``hydra.run.dir=<output_dir>``.

    Lightning's launcher passes ``HydraConfig.get().run.dir`` to the processes it starts: the
    launch's own folder. A resumed run continues in an earlier folder, and the other ranks must
    write (and find checkpoints) there too. No effect outside Hydra.
    """
    if not HydraConfig.initialized():
        return
    run = HydraConfig.get().run
    with read_write(run):
        run.dir = str(Path(output_dir).resolve())
