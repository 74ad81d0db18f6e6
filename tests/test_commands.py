"""Every command reads like the rest: ``threads=`` everywhere, a user's error as one line and exit code 1, the
machine's accelerator checked before any data is read, a renamed key answered with its new name, each command's
files under a folder of its own, and the data scan's warnings in the log file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.data import make_folder_dataset, write_image


def run(command: str, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m garbage_lit.<command> ARGS`` as a user types it, caches under ``cwd``."""
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(cwd / "cache"), "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", f"garbage_lit.{command}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    """The command failed with exit code 1 and said ``message`` on a line of its own, without a traceback."""
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert any(message in line for line in done.stderr.splitlines()), done.stderr[-2000:]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on a 3-class folder data set: (its checkpoint, the data, the working folder)."""
    base = tmp_path_factory.mktemp("commands")
    data = make_folder_dataset(base / "data")
    done = run("train", "debug=fast", "data=folder", f"data.root={data}", f"hydra.run.dir={base / 'run'}", cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    return base / "run" / "checkpoints" / "model.ckpt", data, base


@pytest.mark.slow
def test_every_command_takes_threads_and_writes_under_a_folder_of_its_own(trained, tmp_path):
    ckpt, data, _ = trained
    for command, args, written in (("predict", [f"ckpt={ckpt}", f"inputs=[{data / 'glass'}]"], "predictions.csv"),
                                   ("evaluate", [f"ckpt={ckpt}", "data=folder", f"data.root={data}"],
                                    "evaluation.json"),
                                   ("export", [f"ckpt={ckpt}", "format=torchscript"], "model.pt")):
        done = run(command, *args, "threads=1", cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr[-3000:])
        assert "torch uses 1 CPU threads (threads=1)" in done.stdout + done.stderr
        (folder,) = (tmp_path / "outputs" / command).glob("*/*")  # outputs/<command>/<date>/<time>
        assert (folder / written).is_file() and (folder / f"{command}.log").is_file()
    assert not [p for p in (tmp_path / "outputs").iterdir() if p.name not in ("predict", "evaluate", "export")]


@pytest.mark.slow
def test_the_audit_runs_as_the_docs_show_it(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    done = run("audit", "data=folder", f"data.root={data}", cwd=tmp_path)  # no threads=, no other key added
    assert done.returncode == 0, done.stderr[-3000:]
    (audit,) = (tmp_path / "outputs" / "audit").glob("*/*/audit.json")
    assert json.loads(audit.read_text())["images"] == 30


@pytest.mark.slow
def test_a_users_error_is_one_line_and_exit_code_1_in_every_command(trained, tmp_path):
    ckpt, data, _ = trained
    other = make_folder_dataset(tmp_path / "other", ("glass", "wood"))
    one_line_error(run("evaluate", f"ckpt={ckpt}", "data=folder", f"data.root={other}", cwd=tmp_path),
                   "the dataset's classes ['wood'] are not among the checkpoint's classes")
    one_line_error(run("predict", f"ckpt={tmp_path / 'nope.ckpt'}", f"inputs=[{data}]", cwd=tmp_path),
                   "nope.ckpt: no such checkpoint file")
    one_line_error(run("export", f"ckpt={ckpt}", "format=tflite", cwd=tmp_path), "format='tflite' is not supported")
    one_line_error(run("audit", "data=folder", f"data.root={data}", "data.rotation_degrees=15", cwd=tmp_path),
                   "the audit scores photos as a model sees them at test time")
    one_line_error(run("train", "debug=fast", "data=folder", f"data.root={tmp_path / 'missing'}", cwd=tmp_path),
                   "does not exist or is not a folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_before_the_data_is_read(tmp_path):
    done = run("train", "trainer=gpu", "data=folder", f"data.root={tmp_path / 'not read'}", cwd=tmp_path)
    one_line_error(done, "trainer.accelerator=gpu (trainer=gpu) asks for an NVIDIA GPU, but torch")
    assert "Leave out trainer=gpu to train on the CPU" in done.stderr
    assert "does not exist" not in done.stderr and not list(tmp_path.glob("outputs/*/*/split_manifest.csv"))


@pytest.mark.parametrize(("override", "new"), [("data.feature_cache=false", "cache.features=false"),
                                               ("feature_cache_views=3", "cache.feature_views=3"),
                                               ("data.eval_test=false", "data.test_every_epoch=false"),
                                               ("paths.cache_dir=/tmp/c", "cache.dir=/tmp/c")])
def test_a_renamed_key_is_answered_with_its_new_name(override, new, tmp_path):
    done = run("train", override, "--cfg", "job", cwd=tmp_path)
    assert done.returncode == 1
    old = override.split("=")[0]
    assert f"'{old}' was renamed: it is now '{new.split('=')[0]}'. Write {new} instead" in done.stderr


@pytest.mark.slow
def test_the_data_scans_warnings_reach_train_log(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    (data / "glass" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    write_image(data / "metal" / "tiny.jpg", (40, 200, 40), seed=1, size=(20, 16))
    done = run("train", "debug=fast", "data=folder", f"data.root={data}", f"hydra.run.dir={tmp_path / 'run'}",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert "data problem(s)" in log and "glass/broken.jpg" in log and "tiny image" in log
