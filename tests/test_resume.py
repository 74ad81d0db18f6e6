"""Resume: a SIGKILLed sweep completes on re-run, checkpoints survive kills, earlier runs are found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from garbage_lit.config import CONFIG_DIR
from garbage_lit.records.folder import POINTER_FILE
from garbage_lit.run.resume import (
    ResumePoint,
    continue_in,
    find_previous_run,
    from_ckpt_path,
    newest_checkpoint,
    resume_command,
    resume_point,
    run_dir_siblings,
)
from garbage_lit.training.checkpoint_io import AtomicCheckpointIO

FAST = ["data=folder", "debug=fast"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "garbage_lit.train", *args]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_sigkilled_sweep_resumes_unfinished_job_and_skips_finished_one(folder_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    # Images through the network (not the much faster cached features), so the kill lands inside job 1.
    command = _cli("-m", "seed=0,1", f"data.root={folder_dataset}", "epochs=2", *FAST, "cache.features=false",
                   "callbacks.mid_epoch_checkpoint.every_n_train_steps=2",
            "callbacks.mid_epoch_checkpoint.train_time_interval=null", f"hydra.sweep.dir={sweep}")
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Job 0 finishes; kill the whole sweep once job 1 has saved its first (mid-epoch) checkpoint.
    deadline = time.monotonic() + 600
    while not list((sweep / "1" / "checkpoints").glob("*.ckpt")):
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "job 1 never saved a checkpoint"
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no clean-up code runs
    proc.wait()

    assert _metrics(sweep / "0")["status"] == "completed"
    assert _metrics(sweep / "1")["status"] == "running"
    for checkpoint in (sweep / "1" / "checkpoints").glob("*.ckpt"):
        assert "state_dict" in torch.load(checkpoint, map_location="cpu", weights_only=False)
    finished = (sweep / "0" / "metrics.json").read_bytes()

    subprocess.run([*command, "resume=true"], cwd=tmp_path, env=env, check=True, capture_output=True)

    assert (sweep / "0" / "metrics.json").read_bytes() == finished  # the finished job was not trained again
    resumed = _metrics(sweep / "1")
    assert resumed["status"] == "completed"
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1]
    assert resumed["resumed_from"].startswith("checkpoints/")  # relative to the run folder
    assert resumed["config"]["seed"] == 1
    assert [p.name for p in (sweep / "1").iterdir() if p.name == "tensorboard"] == ["tensorboard"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]


@pytest.fixture
def hydra_job():
    """Makes the current process look like a Hydra job of the training app; returns its output folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    def _job(overrides: list[str], multirun: bool, cwd: Path) -> Path:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        output_dir = cwd / ("multirun/1" if multirun else "outputs/run")
        with open_dict(cfg):
            cfg.hydra.runtime.cwd, cfg.hydra.runtime.output_dir = str(cwd), str(output_dir)
            cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        HydraConfig.instance().set_config(cfg)
        return output_dir

    yield _job
    HydraConfig.instance().cfg = None


def _fake_run(folder: Path, overrides: list[str], status: str) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "metrics.json").write_text(json.dumps({"status": status}))
    return folder


def test_previous_run_is_the_newest_sibling_launched_with_the_same_overrides(tmp_path):
    outputs = tmp_path / "outputs"
    older = _fake_run(outputs / "2026-01-01" / "10-00-00", ["lr=0.01", "epochs=3"], "failed")
    newer = _fake_run(outputs / "2026-01-02" / "09-00-00", ["epochs=3", "lr=0.01"], "running")
    _fake_run(outputs / "2026-01-02" / "09-30-00", ["lr=0.1", "epochs=3"], "running")  # another command
    os.utime(older / "metrics.json", (1, 1))
    launch = outputs / "2026-01-02" / "11-00-00"
    launch.mkdir(parents=True)

    siblings = run_dir_siblings("outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}", cwd=tmp_path)
    assert len(siblings) == 4
    assert find_previous_run(launch, ["lr=0.01", "epochs=3", "resume=true"], siblings) == newer.resolve()
    assert find_previous_run(launch, ["lr=0.5"], siblings) is None
    assert find_previous_run(newer, None) == newer.resolve()  # a fixed run dir continues in place
    assert run_dir_siblings(str(tmp_path / "runs" / "exp1")) == []  # a literal run dir has no siblings


def test_a_reused_folder_of_another_command_is_not_continued(make_cfg, tmp_path, monkeypatch):
    import garbage_lit.run.resume as resume

    run = tmp_path / "multirun" / "0"
    _fake_run(run, ["lr=0.01"], "running")
    (run / "metrics.json").write_text(json.dumps({"status": "running", "overrides": ["lr=0.01"]}))
    monkeypatch.setattr(resume, "launch_overrides", lambda: ["lr=0.1", "resume=true"])
    with pytest.raises(ValueError, match=r"holds a run of \['lr=0.01'\], not of this command's \['lr=0.1'\]"):
        resume.resume_point(make_cfg("resume=true", output_dir=run))
    monkeypatch.setattr(resume, "launch_overrides", lambda: ["resume=true", "lr=0.01"])
    assert resume.resume_point(make_cfg("resume=true", output_dir=run)).run_dir == run.resolve()


def test_ckpt_path_names_a_run_folder_or_a_checkpoint(tmp_path):
    run = _fake_run(tmp_path / "run", [], "running")
    with pytest.raises(ValueError, match="holds no checkpoints"):
        from_ckpt_path(run)
    (run / "checkpoints").mkdir()
    last, mid = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "mid-epoch.ckpt"
    last.write_bytes(b"1")
    mid.write_bytes(b"2")
    os.utime(last, (1, 1))
    assert from_ckpt_path(run).ckpt_path == mid.resolve()
    assert from_ckpt_path(last).run_dir == run.resolve()
    (run / "metrics.json").write_text(json.dumps({"status": "completed", "epochs": [{"epoch": 0}, {"epoch": 1}]}))
    assert from_ckpt_path(run).finished(2) and not from_ckpt_path(run).finished(3)  # epochs=3 trains on
    with pytest.raises(ValueError, match="does not exist"):
        from_ckpt_path(tmp_path / "nowhere")


def test_the_newest_checkpoint_is_the_furthest_trained_whatever_its_file_time(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name, step in (("last.ckpt", 12), ("mid-epoch.ckpt", 10), ("epoch01.ckpt", 12)):
        torch.save({"global_step": step}, checkpoints / name)
    os.utime(checkpoints / "last.ckpt", (1, 1))  # as after `cp -r`: file times in copy order, not training order
    os.utime(checkpoints / "epoch01.ckpt", (2, 2))
    assert newest_checkpoint(tmp_path / "run") == checkpoints / "epoch01.ckpt"
    (checkpoints / "epoch01.ckpt").unlink()
    assert newest_checkpoint(tmp_path / "run") == checkpoints / "last.ckpt"


def test_the_resume_command_of_a_sweep_job_names_its_folder(tmp_path, hydra_job):
    hydra_job(["seed=1", "data.root=/data/my trashnet", "resume=true"], multirun=True, cwd=tmp_path)
    assert resume_command(tmp_path / "multirun" / "1") == (
        f"cd {tmp_path} && python -m garbage_lit.train seed=1 'data.root=/data/my trashnet' "
        f"ckpt_path={tmp_path / 'multirun' / '1'}")


def test_the_resume_command_of_a_run_is_its_command_line_with_resume_true(tmp_path, hydra_job):
    run = hydra_job(["lr=0.01"], multirun=False, cwd=tmp_path)
    argv = ["lr=0.01", "hydra.run.dir=runs/a b", "ckpt_path=old/run"]
    assert resume_command(run, argv) == (f"cd {tmp_path} && python -m garbage_lit.train lr=0.01 "
                                         f"'hydra.run.dir=runs/a b' resume=true")
    assert resume_command(tmp_path / "other", argv).endswith(f"lr=0.01 ckpt_path={tmp_path / 'other'}")


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)

    def dies_half_way(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_continuing_moves_the_config_to_the_earlier_run_and_reuses_its_split(make_cfg, folder_dataset, tmp_path):
    launch = tmp_path / "launch"
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "resume=true", output_dir=launch)
    assert resume_point(cfg) is None  # no earlier run found: start afresh in the launch folder

    previous = _fake_run(tmp_path / "previous", [], "running")
    (previous / "split_manifest.csv").write_text("file,label,class_name,split\n")
    (previous / "checkpoints").mkdir()
    (previous / "checkpoints" / ".last.ckpt.123.tmp").write_bytes(b"partial")
    continue_in(cfg, ResumePoint(previous, None, "running"))

    assert cfg.paths.output_dir == str(previous.resolve())
    assert cfg.callbacks.model_checkpoint.dirpath == str(previous.resolve() / "checkpoints")
    assert cfg.data.split_manifest == str(previous.resolve() / "split_manifest.csv")
    assert (launch / POINTER_FILE).read_text().strip() == str(previous.resolve())
    assert not list((previous / "checkpoints").iterdir())  # the stale temporary file is gone


def test_ckpt_path_trains_a_finished_run_on_when_epochs_asks_for_more(make_cfg, folder_dataset, tmp_path):
    from garbage_lit.train import train

    run = tmp_path / "run"
    data = ["data=folder", f"data.root={folder_dataset}"]
    first = train(make_cfg(*data, "epochs=1", output_dir=run))
    assert train(make_cfg(*data, "epochs=1", f"ckpt_path={run}", output_dir=tmp_path / "again")) == first
    assert (tmp_path / "again" / POINTER_FILE).read_text().strip() == str(run.resolve())

    train(make_cfg(*data, "epochs=2", f"ckpt_path={run}", output_dir=tmp_path / "more"))
    metrics = _metrics(run)
    assert metrics["status"] == "completed"
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    assert metrics["resumed_from"] == "checkpoints/last.ckpt"  # a link to the kept epoch
    assert (tmp_path / "more" / POINTER_FILE).read_text().strip() == str(run.resolve())
