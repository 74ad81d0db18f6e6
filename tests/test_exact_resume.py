"""A run stopped at any step and resumed ends exactly as the same command left alone: the same weights, the same
per-epoch metrics, the same EMA average. Each case is compared with an uninterrupted run of the same command on this
machine: a SIGTERM at an epoch's end and in the middle of one, a kill -9 (resumed from the last checkpoint), a run on
cached features, and one with MixUp/CutMix and EMA on throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.data import REPO, make_folder_dataset
from helpers.resume import FINETUNE, STOPPER, same_run

pytestmark = pytest.mark.slow

# A frozen backbone on its cached features: 5 rotated views per image, one drawn per image and epoch.
CACHED = ["debug=fast", "epochs=3", "data.rotation_degrees=15", "cache.features=true", "cache.feature_views=5",
          "batch_size=4", "callbacks.mid_epoch_checkpoint.every_n_train_steps=2",
          "callbacks.mid_epoch_checkpoint.train_time_interval=null"]


def train(folder: Path, data: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(folder.parent / "cache"), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "garbage_lit.train", "data=folder", f"data.root={data}", *args,
                           f"hydra.run.dir={folder}"], cwd=folder.parent, env=env, capture_output=True, text=True,
                          timeout=900)


def stopped_then_resumed(folder: Path, data: Path, args: list[str], stop: str) -> dict:
    """The run stopped by ``stop`` (a StopAt callback's settings), then resumed to its end: its metrics.json."""
    stopper = [*STOPPER, *(f"+callbacks.stopper.{s}" for s in stop.split())]
    first = train(folder, data, [*args, *stopper])
    assert first.returncode != 0, first.stderr[-2000:]
    assert json.loads((folder / "metrics.json").read_text())["status"] in ("interrupted", "running")
    second = train(folder, data, [*args, *stopper, "resume=true"])
    assert second.returncode == 0, second.stderr[-3000:]
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def finetune_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("exact")
    data = make_folder_dataset(base / "data")
    done = train(base / "reference", data, FINETUNE)
    assert done.returncode == 0, done.stderr[-3000:]
    return base, data


@pytest.mark.parametrize(("stop", "loader"), [("epoch=1", []), ("step=9", ["data.num_workers=2"]),
                                             ("step=9 signal=9", [])],
                         ids=["sigterm-at-epoch-end", "sigterm-mid-epoch-2-workers", "kill-9-mid-epoch"])
def test_a_stopped_finetune_resumes_to_the_same_weights_metrics_and_ema(finetune_reference, stop, loader):
    """Also with the images loaded by 2 worker processes where the reference loaded them in the main one: each
    image's augmentation draws from its own seed."""
    base, data = finetune_reference
    folder = base / stop.replace(" ", "_").replace("=", "")
    metrics = stopped_then_resumed(folder, data, [*FINETUNE, *loader], stop)
    assert len(metrics["earlier_attempts"]) == 1
    assert Path(metrics["resumed_from"]).name == ("mid-epoch.ckpt" if "signal=9" in stop else "stop.ckpt")
    assert not (folder / "checkpoints" / "stop.ckpt").exists()  # removed once training finished
    same_run(folder, base / "reference")


def test_a_stopped_run_on_cached_features_resumes_exactly(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    done = train(tmp_path / "reference", data, CACHED)
    assert done.returncode == 0, done.stderr[-3000:]
    for stop in ("step=8", "epoch=0"):
        folder = tmp_path / stop.replace("=", "")
        stopped_then_resumed(folder, data, CACHED, stop)
        same_run(folder, tmp_path / "reference")


def test_a_resume_on_another_set_up_says_it_is_not_exact(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    folder = tmp_path / "run"
    first = train(folder, data, [*CACHED, "threads=2", *STOPPER, "+callbacks.stopper.step=8"])
    assert first.returncode != 0
    second = train(folder, data, [*CACHED, "threads=1", *STOPPER, "+callbacks.stopper.step=8", f"ckpt_path={folder}"])
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = json.loads((folder / "metrics.json").read_text())["resumed"]
    assert resumed == {"exact": False, "differs": {"threads": [2, 1]}}
    assert "this resume is not bit-identical to a run that never stopped (threads: 2 -> 1)" in second.stdout \
        + second.stderr
