"""trainer=ddp: two CPU processes (gloo) train together; rank 0 alone writes and logs; results match one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from garbage_lit.train import train

from helpers import TEST_ACC
from helpers.trackers import wandb_offline_runs

pytestmark = pytest.mark.slow  # whole sweeps or several processes

FAST = ["data=folder", "debug=fast", "epochs=2", "lr=0.01"]


def test_two_process_ddp_on_cpu_matches_one_process(folder_dataset, make_cfg, tmp_path):
    workdir = tmp_path / "ddp"
    workdir.mkdir()
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "garbage_lit.train", "trainer=ddp", "trainer.accelerator=cpu",
                             "batch_size=2",  # per process: the same effective batch of 4 as the single run
                             "logger=[tensorboard,wandb]", "logger.wandb.mode=offline",
                             f"data.root={folder_dataset}", *FAST],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]

    runs = list((workdir / "outputs").glob("*/*"))
    assert len(runs) == 1, runs  # rank 1 reused rank 0's Hydra folder instead of making its own
    run = runs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["config"]["trainer"]["strategy"] == "ddp"
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    # Synchronised metrics: the test result covers all 6 test images, not one process's 3.
    assert sum(map(sum, metrics["final"]["confusion_matrix"])) == 6
    # Per-image predictions gathered from both ranks, each test image once, in the data module's order.
    with (run / "test_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len({r["file"] for r in rows}) == len(rows) == 6
    assert sum(r["label"] == r["predicted"] for r in rows) / 6 == pytest.approx(metrics["final"][TEST_ACC])
    # Only rank 0 (the launched process) wrote TensorBoard events and checkpoints.
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and {e.name.rsplit(".", 2)[1] for e in events} == {str(proc.pid)}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch01.ckpt", "last.ckpt", "model.ckpt"]
    # ... and one W&B run, finished, with each epoch once and the final test.
    (tracked,) = wandb_offline_runs(run)
    assert tracked.exit_code == 0 and len(tracked.values("train/loss")) == 2
    assert tracked.values(TEST_ACC)[-1] == pytest.approx(metrics["final"][TEST_ACC])

    single = train(make_cfg("data=folder", f"data.root={folder_dataset}", "epochs=2", "lr=0.01", "batch_size=4",
                            output_dir=tmp_path / "single"))
    assert abs(metrics["final"][TEST_ACC] - single[TEST_ACC]) <= 1 / 6 + 1e-6  # at most one of six test images apart


def test_ddp_ranks_are_relaunched_into_the_jobs_own_folder(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from lightning_fabric.strategies.launchers.subprocess_script import _hydra_subprocess_cmd

    from garbage_lit.config import CONFIG_DIR
    from garbage_lit.run.launch import share_output_dir_with_ddp_ranks

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        share_output_dir_with_ddp_ranks(tmp_path / "earlier_run")  # a resumed run continues there
        command, _ = _hydra_subprocess_cmd(local_rank=1)
    finally:
        HydraConfig.instance().cfg = None
    assert f'hydra.run.dir="{tmp_path / "earlier_run"}"' in command
