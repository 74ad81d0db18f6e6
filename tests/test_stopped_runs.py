"""A run that stops (Ctrl-C, SIGTERM, a full disk) says so, keeps its finished work and resumes: in place, or
from a copy of its folder on another disk with the original gone."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from garbage_lit.models.loading import load_classifier
from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.records.folder import record_failure, start_attempt
from garbage_lit.report.jobs import load_sweep
from garbage_lit.run.failures import recording_stops
from garbage_lit.training.checkpoint_io import AtomicCheckpointIO

from helpers.system import small_disk, unmount

TIMEOUT = 900  # seconds for one training subprocess, on a busy machine


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user's shell: this Python's `python` first on PATH, caches under tmp_path."""
    return {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m garbage_lit.train ARGS`` run as a user would, stdout and stderr together."""
    return subprocess.run([sys.executable, "-m", "garbage_lit.train", *args], cwd=cwd, env=_env(cwd),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)


def _run_command(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A command line as a person pastes it into a shell."""
    return subprocess.run(command, shell=True, cwd=cwd, env=_env(cwd), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)


@pytest.mark.slow
@pytest.mark.parametrize("signum, exit_code, name", [(signal.SIGINT, 130, "SIGINT (Ctrl-C)"),
                                                     (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signalled_run_is_interrupted_and_its_resume_command_completes_it(folder_dataset, tmp_path, signum,
                                                                            exit_code, name):
    run = tmp_path / "run"
    # Images through a trained backbone (no feature cache): epochs long enough to stop one part-way.
    args = ["debug=fast", "data=folder", f"data.root={folder_dataset}", "epochs=2", "model.freeze_backbone=false",
            "callbacks.mid_epoch_checkpoint.every_n_train_steps=2",
            "callbacks.mid_epoch_checkpoint.train_time_interval=null", f"hydra.run.dir={run}"]
    log = tmp_path / "interrupted.log"
    with log.open("w") as output:
        # SIGINT as in a terminal, even when this test runs where SIGINT is ignored (a background job).
        process = subprocess.Popen([sys.executable, "-m", "garbage_lit.train", *args], cwd=tmp_path,
                                   env=_env(tmp_path), stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + TIMEOUT
        while not (run / "checkpoints" / "mid-epoch.ckpt").exists():  # two steps trained: really running
            assert process.poll() is None, f"training ended before it could be stopped:\n{log.read_text()}"
            assert time.monotonic() < deadline, "training never saved its first checkpoint"
            time.sleep(0.05)
        process.send_signal(signum)
        assert process.wait(timeout=TIMEOUT) == exit_code, log.read_text()

    stopped = _metrics(run)
    command = (f"cd {shlex.quote(str(tmp_path))} && python -m garbage_lit.train {shlex.join(args)} resume=true")
    assert stopped["status"] == "interrupted"
    assert stopped["error"] == f"interrupted by {name}"
    assert stopped["resume_command"] == command
    assert len(stopped["epochs"]) < 2
    said = log.read_text()
    assert f"interrupted by {name}" in said and command in said
    assert "Traceback" not in said
    assert (run / "failure.log").stat().st_size > 0  # where it was when it stopped

    resumed = _run_command(command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout
    metrics = _metrics(run)
    assert metrics["status"] == "completed" and "error" not in metrics and "resume_command" not in metrics
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    assert metrics["resumed_from"].startswith("checkpoints/")
    assert metrics["earlier_attempts"] == [{"status": "interrupted", "error": f"interrupted by {name}",
                                            "epochs": len(stopped["epochs"]),
                                            "failure_log": "attempts/failure-1.log"}]
    assert not (run / "failure.log").exists()  # the earlier attempt's is kept under attempts/, named above
    assert (run / "attempts" / "failure-1.log").stat().st_size > 0


@pytest.mark.slow
def test_a_full_disk_is_said_plainly_and_a_copy_of_the_run_resumes_on_a_bigger_disk(folder_dataset, tmp_path):
    """The run trains every epoch on a small disk, then its final checkpoint (the whole model) does not fit."""
    args = ["debug=fast", "data=folder", f"data.root={folder_dataset}", "epochs=2"]
    copy = tmp_path / "bigger_disk" / "run"
    with small_disk(tmp_path / "small_disk", "4m") as disk:
        run = disk / "run"
        failed = _train([*args, f"hydra.run.dir={run}"], cwd=tmp_path)

        assert failed.returncode == 1, failed.stdout
        message = re.search(rf"No space left on device writing {re.escape(str(run))}/(\S+\.ckpt)", failed.stdout)
        assert message, failed.stdout
        assert "Traceback" not in failed.stdout and "enforce fail" not in failed.stdout
        metrics = _metrics(run)
        assert metrics["status"] == "failed"
        assert metrics["error"] == message.group(0)
        assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
        assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]  # no half-written file left
        assert not (run / "failure.log").exists() or (run / "failure.log").stat().st_size > 0
        finished = [torch.load(p, map_location="cpu", weights_only=True)["epoch"]
                    for p in (run / "checkpoints").glob("*.ckpt")]
        assert finished and max(finished) == 1  # the finished epochs' checkpoints are kept

        copy.parent.mkdir()
        subprocess.run(["cp", "-r", str(run), str(copy)], check=True)
        unmount(disk)  # the original is gone with its disk
    before = sorted(p.name for p in tmp_path.iterdir())

    resumed = _train([*args, "resume=true", f"hydra.run.dir={copy}"], cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stdout
    metrics = _metrics(copy)
    assert metrics["status"] == "completed"
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    assert metrics["earlier_attempts"][0]["error"].startswith("No space left on device writing ")
    final = copy / metrics["final"]["checkpoint"]  # recorded relative to the run folder
    assert final.is_relative_to(copy) and load_classifier(final).hparams.num_classes == 3  # self-contained
    assert not list((tmp_path / "small_disk").iterdir())  # nothing written where the original was
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nor anywhere else outside the copy


def test_sigterm_outside_training_stops_the_job_as_interrupted(make_cfg, tmp_path):
    def outside_the_job(signum, frame):  # instead of SIGTERM's default, which would end pytest itself
        raise AssertionError("SIGTERM reached the handler from before the job")

    cfg = make_cfg(output_dir=tmp_path / "run")
    previous = signal.signal(signal.SIGTERM, outside_the_job)
    try:
        with pytest.raises(SystemExit) as stopped, recording_stops(cfg):
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. while the data is being scanned: no Trainer running
            time.sleep(5)  # the handler raises at the next bytecode, long before this ends
        assert signal.getsignal(signal.SIGTERM) is outside_the_job  # the job's handler is gone with the job
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 143
    assert {k: _metrics(tmp_path / "run")[k] for k in ("status", "error")} == {"status": "interrupted",
                                                                              "error": "interrupted by SIGTERM"}


def test_a_moved_run_folder_resumes_in_its_new_place_and_keeps_its_best_epoch(make_cfg, folder_dataset, tmp_path):
    from garbage_lit.train import train

    data = ["data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.25", "optim=adam", "lr=0.01"]
    first = tmp_path / "first_disk" / "run"
    train(make_cfg(*data, "epochs=1", output_dir=first))
    moved = tmp_path / "second_disk" / "run"
    moved.parent.mkdir()
    shutil.move(first, moved)

    final = train(make_cfg(*data, "epochs=3", f"ckpt_path={moved}", output_dir=tmp_path / "launch"))

    metrics = _metrics(moved)
    val_acc = [e["val/acc"] for e in metrics["epochs"]]
    assert len(val_acc) == 3 and final["epoch"] == val_acc.index(max(val_acc))  # the first best of all epochs
    assert [p.name for p in (moved / "checkpoints").glob("epoch*.ckpt")] == [f"epoch{final['epoch']:02d}.ckpt"]
    assert metrics["final"]["checkpoint"] == "checkpoints/model.ckpt"  # the kept epoch, whole, in the new place
    kept = torch.load(moved / "checkpoints" / f"epoch{final['epoch']:02d}.ckpt", weights_only=True)["state_dict"]
    model = torch.load(moved / "checkpoints" / "model.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(kept["head.weight"], model["head.weight"])
    assert not first.exists()


def test_on_a_full_disk_writes_fail_whole_and_name_their_file(tmp_path):
    with small_disk(tmp_path / "disk", "256k") as disk:
        run = disk / "run"
        (run / "checkpoints").mkdir(parents=True)
        write_json_atomic(run / "metrics.json", {"status": "running"})
        with (disk / "filler").open("wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(b"\0" * 4096)  # until the disk is full

        with pytest.raises(OSError, match=rf"No space left on device: '{re.escape(str(run))}/metrics.json'"):
            write_json_atomic(run / "metrics.json", {"status": "running", "epochs": [{"epoch": 0}] * 1000})
        with pytest.raises(OSError, match=r"No space left on device: '.*/checkpoints/last.ckpt'"):
            AtomicCheckpointIO().save_checkpoint({"weights": torch.zeros(100_000)}, run / "checkpoints" / "last.ckpt")
        record_failure(run, RuntimeError("x" * 100_000))  # neither the traceback nor the status fits

        assert _metrics(run) == {"status": "running"}  # the last complete metrics.json, whole
        assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == ["checkpoints", "metrics.json"]


def test_each_earlier_attempt_is_named_with_its_failure_log(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for status, error in (("failed", "OSError: disk"), ("interrupted", "interrupted by SIGTERM")):
        (run / "failure.log").write_text(f"Traceback ... {error}\n")
        write_json_atomic(run / "metrics.json", {**(json.loads((run / "metrics.json").read_text())
                                                    if (run / "metrics.json").exists() else {}),
                                                 "status": status, "error": error, "epochs": [{"epoch": 0}],
                                                 "resume_command": "cd x && python -m garbage_lit.train"})
        start_attempt(run)

    metrics = _metrics(run)
    assert metrics["status"] == "running" and "error" not in metrics and "resume_command" not in metrics
    assert metrics["earlier_attempts"] == [
        {"status": "failed", "error": "OSError: disk", "epochs": 1, "failure_log": "attempts/failure-1.log"},
        {"status": "interrupted", "error": "interrupted by SIGTERM", "epochs": 1,
         "failure_log": "attempts/failure-2.log"}]
    assert (run / "attempts" / "failure-2.log").read_text() == "Traceback ... interrupted by SIGTERM\n"
    assert not (run / "failure.log").exists()


def test_a_sweep_report_shows_an_interrupted_job_with_how_it_stopped(tmp_path):
    job = tmp_path / "sweep" / "0"
    job.mkdir(parents=True)
    (job / "metrics.json").write_text(json.dumps({"status": "interrupted", "error": "interrupted by SIGTERM"}))
    [result] = load_sweep(tmp_path / "sweep")
    assert (result.status, result.error) == ("interrupted", "interrupted by SIGTERM")
