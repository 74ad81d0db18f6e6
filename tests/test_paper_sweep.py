"""A real (tiny) paper_quick sweep with one impossible value: it survives, the report and notebook read it."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from garbage_lit.report.__main__ import main
from garbage_lit.report.claims import NONE_TESTED
from garbage_lit.report.sweep import build_report

from helpers.data import make_folder_dataset
from helpers.sweeps import run_sweep

pytestmark = pytest.mark.slow  # whole sweeps or several processes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """experiment=paper_quick narrowed to resnet18 / SGD / lr 0.003; batch_size 1000 cannot work (24 images).

    Jobs: 0 and 1 (batch 1000, seeds 0 and 1) fail first, 2 and 3 (batch 4) must still run.
    """
    base = tmp_path_factory.mktemp("paper_sweep")
    data = make_folder_dataset(base / "data")
    sweep = base / "sweep"
    process = run_sweep(sweep, data, "experiment=paper_quick", "model=resnet18", "optim=sgd_plain", "lr=0.003",
                        "epochs=2", "batch_size=1000,4", "seed=0,1")
    return sweep, process


def test_a_failing_job_does_not_stop_the_sweep(tiny_sweep):
    sweep, process = tiny_sweep
    assert process.returncode != 0, "a sweep with a failed job must exit non-zero"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1", "2", "3"]
    metrics = {n: json.loads((sweep / str(n) / "metrics.json").read_text()) for n in range(4)}
    for n in (0, 1):
        assert metrics[n]["status"] == "failed"
        assert "batch_size=1000 is larger than the training set" in metrics[n]["error"]
        log = (sweep / str(n) / "failure.log").read_text()
        assert log.startswith("Traceback") and "DataError" in log
    for n in (2, 3):
        assert metrics[n]["status"] == "completed", process.stderr[-2000:]
        assert [e["epoch"] for e in metrics[n]["epochs"]] == [0, 1]  # paper_quick: 2 epochs
        assert metrics[n]["config"]["optim"]["momentum"] == 0.0     # the paper's plain SGD
        assert metrics[n]["config"]["data"]["image_size"] == 32     # debug=fast beats the preset
    # seeds differ, the split does not
    assert metrics[2]["config"]["seed"] != metrics[3]["config"]["seed"]
    assert metrics[2]["data"]["split_manifest_sha256"] == metrics[3]["data"]["split_manifest_sha256"]
    assert (sweep / "2" / "split_manifest.csv").read_bytes() == (sweep / "3" / "split_manifest.csv").read_bytes()


def test_report_cli_on_the_sweep(tiny_sweep, capsys):
    sweep, _ = tiny_sweep
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 jobs completed" in out
    assert "## Summary" in out and "epoch 1 train/loss / acc" in out and "epoch 0 test/loss / acc" in out
    # batch 4 and 1000 are none of the paper's configurations: one sentence, no table (the weights are in the summary)
    assert "## The paper's numbers beside ours" in out and "None of the paper's configurations" in out
    assert "## Claims" in out and NONE_TESTED in out  # resnet18 only, and never at batch 32
    assert "every job that recorded one used the same split" in out
    report = build_report(sweep)
    ok, failed = report.summary_rows
    assert (ok["model"], ok["batch_size"], ok["optimizer"], ok["lr"], ok["n"]) == ("resnet18", 4, "SGD", 0.003, 2)
    assert ok["test/acc ± std"].endswith("(n=2)") and " ± " in ok["test/acc ± std"]
    assert ok["weights"] == "none (random init)"
    assert (failed["batch_size"], failed["status"], failed["n"]) == (1000, "2 failed", 0)
    for command in report.rerun_commands():
        assert command in out and "batch_size=1000" in command
    for name in ("report.md", "summary.csv", "paper_table.csv", "paper_comparison.csv", "claims.csv",
                 "claim_pairs.csv", "learning_speed.csv", "jobs.csv", "learning_curves.png",
                 "accuracy_comparison.png"):
        assert (sweep / name).stat().st_size > 0, name


def test_rerun_command_fills_a_missing_job(tiny_sweep, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_sweep[0], sweep)
    shutil.rmtree(sweep / "3")
    report = build_report(sweep)
    missing = next(j for j in report.jobs if j.num == 3)
    assert missing.status == "missing" and "seed=1" in missing.overrides
    command = shlex.split(missing.rerun_command())
    assert command[:3] == ["python", "-m", "garbage_lit.train"]
    subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, check=True, capture_output=True, timeout=600)
    rerun = build_report(sweep)
    assert [j.status for j in rerun.jobs] == ["failed", "failed", "completed", "completed"]
    assert rerun.summary_rows[0]["n"] == 2 and not rerun.other_split_jobs


def test_notebook_runs_headless_on_the_sweep(tiny_sweep, monkeypatch):
    sweep, _ = tiny_sweep
    monkeypatch.setenv("GARBAGE_LIT_SWEEP_DIR", str(sweep))
    notebook = nbformat.read(REPO / "notebooks" / "reproduce_paper.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(sweep)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert f"2 of 4 jobs completed in {sweep}" in text
    assert "| test/acc ± std | test/recall ± std |" in text
    assert "epoch 0 train/loss / acc" in text and "| none (random init) |" in text  # the summary's weights
    assert "None of the paper's configurations" in text  # batch 4 and 1000: nothing to set beside the paper
    assert NONE_TESTED in text  # the Claims section
    assert "best job 2:" in text or "best job 3:" in text
    assert "batch_size=1000" in text  # the failed jobs and their re-run commands
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # learning curves, accuracy comparison, confusion matrix
    assert (sweep / "best_confusion_matrix.png").is_file()
