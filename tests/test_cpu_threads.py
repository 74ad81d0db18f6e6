"""Parallel CPU sweep jobs split the cores between them; ``threads=`` and OMP_NUM_THREADS override that."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from garbage_lit.config import CONFIG_DIR
from garbage_lit.run.launch import share_cpu_threads


@pytest.fixture(autouse=True)
def keep_torch_threads(monkeypatch):
    """Each test starts without OMP_NUM_THREADS and leaves torch's thread count as it found it."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_parallel_launcher_config_gives_each_job_its_share_of_the_cores(make_cfg):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        hydra_cfg = compose(config_name="train", overrides=["hydra/launcher=parallel", "hydra.launcher.n_jobs=4"],
                            return_hydra_config=True).hydra
    assert "joblib" in hydra_cfg.launcher._target_
    cfg = make_cfg("trainer.accelerator=cpu")
    assert share_cpu_threads(cfg, hydra_cfg.launcher.n_jobs, cpu_count=8) == 2
    assert torch.get_num_threads() == 2
    assert share_cpu_threads(cfg, 3, cpu_count=2) == 1  # more jobs than cores: one thread each
    assert share_cpu_threads(cfg, -1, cpu_count=8) == 1  # joblib's -1: as many jobs as cores


def test_threads_key_wins_and_is_checked(make_cfg):
    assert share_cpu_threads(make_cfg("threads=3"), 4, cpu_count=8) == 3
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match=r"threads=0 is not allowed.*threads=null"):
        share_cpu_threads(make_cfg("threads=0"), None)


def test_left_alone_outside_parallel_cpu_sweeps_or_with_omp_num_threads(make_cfg, monkeypatch):
    torch.set_num_threads(2)
    assert share_cpu_threads(make_cfg("trainer.accelerator=cpu"), None, cpu_count=8) is None  # not parallel
    assert share_cpu_threads(make_cfg("trainer.accelerator=gpu"), 4, cpu_count=8) is None  # one GPU per job instead
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert share_cpu_threads(make_cfg("trainer.accelerator=cpu"), 4, cpu_count=8) is None
    assert torch.get_num_threads() == 2
