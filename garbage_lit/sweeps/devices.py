"""One GPU per job when a sweep runs several jobs at once on a machine with several GPUs."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


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
