"""Parallel and cluster launchers, one GPU per job, and job folders that never collide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf

from garbage_lit.config import CONFIG_DIR
from garbage_lit.run.launch import assign_job_gpu, gpu_for_job

from helpers.data import make_folder_dataset
from helpers.sweeps import run_sweep

pytestmark = pytest.mark.slow  # whole sweeps or several processes


def _completed_jobs(sweep: Path) -> list[dict]:
    folders = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [json.loads((p / "metrics.json").read_text()) for p in folders]


def test_parallel_launcher_runs_jobs_with_dataloader_workers(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    process = run_sweep(tmp_path / "sweep", data, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                        "data.num_workers=1", "epochs=1", "batch_size=4", "seed=0,1")
    assert process.returncode == 0, process.stderr[-3000:]
    launcher = OmegaConf.load(tmp_path / "sweep" / "multirun.yaml").hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2
    jobs = _completed_jobs(tmp_path / "sweep")
    assert [j["status"] for j in jobs] == ["completed", "completed"]
    assert [j["config"]["data"]["num_workers"] for j in jobs] == [1, 1]
    assert {j["config"]["seed"] for j in jobs} == {0, 1}
    for n in (0, 1):  # loky's start method was replaced, or the workers could not have started
        assert "start method loky ->" in (tmp_path / "sweep" / str(n) / "train.log").read_text()


def test_submitit_local_launcher_stands_in_for_slurm(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    process = run_sweep(sweep, data, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                        "epochs=1", "batch_size=4", "optim=adam")
    assert process.returncode == 0, process.stderr[-3000:]
    jobs = _completed_jobs(sweep)
    assert [(j["status"], j["config"]["optim"]["algorithm"]) for j in jobs] == [("completed", "torch.optim.Adam")]
    assert list((sweep / ".submitit").glob("*/*_log.out")), "submitit keeps each job's log under .submitit/"


def _hydra_config(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_takes_partition_time_and_gpus_from_config():
    launcher = _hydra_config("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30",
                             "hydra.launcher.gpus_per_node=2").hydra.launcher
    # hydra-submitit-launcher's launcher, noticing jobs that SLURM kills (hydra_plugins/garbage_lit_slurm)
    assert launcher._target_ == "hydra_plugins.garbage_lit_slurm.slurm_launcher.SlurmLauncher"
    # by name: Hydra's plugin scan re-executes plugin modules, so the base class object can be a newer copy
    bases = {f"{cls.__module__}.{cls.__qualname__}" for cls in get_class(launcher._target_).__mro__}
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in bases
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node) == ("gpu", 30, 2)
    assert (launcher.signal_delay_s, launcher.max_num_timeout) == (120, 3)  # checkpoint and requeue at the limit
    assert _hydra_config("hydra/launcher=slurm").hydra.launcher.gpus_per_node == 1


def test_paper_preset_declares_the_papers_grid():
    cfg = _hydra_config("experiment=paper")
    assert dict(cfg.hydra.sweeper.params) == {"model": "resnet18,googlenet", "optim": "sgd_plain,adam",
                                              "lr": "0.003,0.01", "batch_size": "32,64"}
    assert (cfg.epochs, cfg.data.test_ratio, cfg.data.val_ratio, cfg.model.freeze_backbone) == (10, 0.2, 0.0, True)
    assert cfg.optim.momentum == 0.0 and cfg.get("scheduler") is None


def test_job_folders_cannot_collide():
    hydra = OmegaConf.to_container(_hydra_config().hydra)  # unresolved: the patterns themselves
    assert hydra["run"]["dir"].endswith("${now:%H-%M-%S-%f}")      # microseconds: two runs in one second differ
    assert hydra["sweep"]["dir"].endswith("${now:%H-%M-%S-%f}")
    assert hydra["sweep"]["subdir"] == "${hydra.job.num}"           # one folder per job number within a sweep


def test_gpu_for_job_spreads_jobs_over_gpus():
    assert [gpu_for_job(n, 3) for n in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError):
        gpu_for_job(0, 0)


def test_assign_job_gpu_only_touches_default_devices_in_sweeps(make_cfg):
    cfg = make_cfg()
    assert assign_job_gpu(cfg, job_num=5, num_gpus=4) == 1 and list(cfg.trainer.devices) == [1]
    assert assign_job_gpu(make_cfg(), job_num=None, num_gpus=4) is None       # a single run: unchanged
    assert assign_job_gpu(make_cfg(), job_num=5, num_gpus=1) is None          # one GPU: nothing to spread
    explicit = make_cfg("trainer.devices=2")
    assert assign_job_gpu(explicit, job_num=5, num_gpus=4) is None and explicit.trainer.devices == 2
    cpu = make_cfg("trainer.accelerator=cpu")
    assert assign_job_gpu(cpu, job_num=5, num_gpus=4) is None and cpu.trainer.devices == 1
