"""Per-launch set-up of a job: CPU threads, its GPU or share of the cores in a sweep, DataLoader workers that start,
DDP ranks."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

from garbage_lit.errors import ConfigError

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


def start_command(cfg: DictConfig) -> None:
    """The start of evaluate, predict, export and audit: their CPU threads (``threads``; null: torch's default), and
    Python warnings (the data scan's, say) into the command's log file as well as on the console."""
    logging.captureWarnings(True)
    set_threads(cfg.get("threads"))


def prepare_sweep_job(cfg: DictConfig) -> None:
    """The start of a training job: warnings into ``train.log``, an accelerator the machine has, and in a multirun one
    GPU (or a share of the cores) per job and DataLoader workers that start."""
    import torch

    logging.captureWarnings(True)
    # trainer.deterministic makes torch also fill every new tensor with NaN, which no result here depends on (results
    # are identical without it): the largest item of a fine-tuning step's "other" time (benchmarks/README.md, 11).
    torch.utils.deterministic.fill_uninitialized_memory = False
    hydra_cfg = HydraConfig.get()
    use_platform_start_method()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    check_accelerator(cfg.trainer)
    assign_job_gpu(cfg, hydra_cfg.job.num if multirun else None)
    parallel = multirun and "joblib" in str(hydra_cfg.launcher.get("_target_", ""))
    share_cpu_threads(cfg, hydra_cfg.launcher.n_jobs if parallel else None)


def set_threads(threads: object) -> int | None:
    """Set torch's CPU threads to ``threads`` (the ``threads=`` of every command); None leaves torch's choice."""
    if threads is None:
        return None
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads={threads!r} is not allowed: threads must be an integer >= 1 "
                          f"(torch CPU threads), or threads=null to choose automatically")
    import torch

    torch.set_num_threads(threads)
    log.info("torch uses %d CPU threads (threads=%d)", threads, threads)
    return threads


def share_cpu_threads(cfg: DictConfig, n_jobs: int | None, cpu_count: int | None = None) -> int | None:
    """Set torch's CPU threads for a training job; return the number set (None: left as torch chose).

    ``threads`` (top-level) always wins. Otherwise ``n_jobs`` jobs running at once on the CPU (the
    joblib launcher, ``hydra/launcher=parallel``; negative counts as joblib reads them) get
    ``cores // n_jobs`` threads each, so they do not thrash one another, unless ``OMP_NUM_THREADS``
    is set: joblib sets it to that share in its workers, or passes on the user's own value.
    """
    import torch

    if cfg.get("threads") is not None:
        return set_threads(cfg.threads)
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if n_jobs is None or not on_cpu:
        return None
    cores = cpu_count or os.cpu_count() or 1
    at_once = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    if "OMP_NUM_THREADS" in os.environ:
        log.info("%d jobs at once on %d cores: torch uses %d CPU threads (OMP_NUM_THREADS=%s)", at_once, cores,
                 torch.get_num_threads(), os.environ["OMP_NUM_THREADS"])
        return None
    share = max(1, cores // at_once)
    torch.set_num_threads(share)
    log.info("%d jobs at once on %d cores: torch uses %d CPU threads per job (set threads= to change)",
             at_once, cores, share)
    return share


def check_accelerator(trainer_cfg: DictConfig) -> None:
    """Refuse, before any data is read, an accelerator this machine does not have (``trainer=gpu`` without a GPU)."""
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + (" is a CPU-only build" if torch.version.cuda is None
                                                 else f" (CUDA {torch.version.cuda}) sees no GPU on this machine")
        raise ConfigError(f"trainer.accelerator={accelerator} (trainer=gpu) asks for an NVIDIA GPU, but {build}. "
                          f"Leave out trainer=gpu to train on the CPU (trainer.accelerator=auto picks a GPU when "
                          f"there is one), or run on a machine with a GPU and a CUDA build of torch")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps asks for Apple's GPU, which this machine does not have; set "
                          "trainer.accelerator=auto or cpu")


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
