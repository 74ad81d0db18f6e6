"""The sweep report on a hand-made sweep folder: parsing, mean ± std, failure marking, re-run commands, files."""

from __future__ import annotations

import csv
import json
import math
import shlex
from pathlib import Path

import pytest
import yaml

from garbage_lit.records.folder import planned_jobs
from garbage_lit.report.__main__ import main
from garbage_lit.report.claims import NO_CLAIM, NONE_TESTED, NOT_PAPER_SWEEP, NOT_TESTED
from garbage_lit.report.jobs import load_sweep
from garbage_lit.report.paper import NOT_IN_SWEEP, RANDOM_INIT_NOTE, load_reference
from garbage_lit.report.plots import learning_curves_figure
from garbage_lit.report.sweep import EPOCH_NOTE, build_report, write_report
from garbage_lit.report.tables import mean_std, optimizer_label

from helpers.data import require_shared

SHA = "a" * 64


def _job(sweep: Path, num: int, optim: str, seed: int, status: str | None, acc: float = 0.0, recall: float = 0.0,
         sha: str = SHA) -> None:
    """A job folder as train.py leaves it: .hydra/{overrides,config}.yaml and metrics.json."""
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"optim={optim}", f"seed={seed}", "lr=0.003"]))
    optim_cfg = ({"_target_": "torch.optim.SGD", "lr": "${lr}", "momentum": 0.0} if optim == "sgd_plain"
                 else {"_target_": "torch.optim.Adam", "lr": "${lr}"})
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"seed": seed, "lr": 0.003, "batch_size": 32, "model": {"backbone": "resnet18"}, "optim": optim_cfg}))
    if status is None:
        return
    metrics: dict = {"status": status}
    if status == "failed":
        metrics["error"] = "RuntimeError: CUDA out of memory"
    if status == "completed":
        metrics.update(
            weights_source="imagenet (resnet18)", seconds_per_epoch=2.0, best_epoch=1,
            data={"root": "/data", "split_manifest_sha256": sha},
            final={"test/acc": acc, "test/recall": recall, "test/loss": 1.0, "confusion_matrix": [[1, 0], [0, 1]]},
            epochs=[{"epoch": e, "train/loss": 2.0 - e - seed, "train/acc": 0.3 + 0.1 * e, "test/loss": 1.5 - e,
                     "test/acc": acc - 0.1 * (1 - e)} for e in (0, 1)])
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """6 planned jobs (optim x seed 0..2): 3 completed, 1 failed, 1 interrupted, 1 never started."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "params": {"optim": "sgd_plain,adam"}},
        "overrides": {"task": ["seed=0,1,2", "lr=0.003"]}}}))
    _job(sweep, 0, "sgd_plain", 0, "completed", acc=0.5, recall=0.4)
    _job(sweep, 1, "sgd_plain", 1, "completed", acc=0.7, recall=0.6, sha="b" * 64)
    _job(sweep, 2, "sgd_plain", 2, "failed")
    _job(sweep, 3, "adam", 0, "completed", acc=0.8, recall=0.75)
    _job(sweep, 4, "adam", 1, "running")
    return sweep  # job 5 (adam, seed 2) has no folder at all


def test_load_sweep_rebuilds_the_grid_and_marks_every_job(sweep):
    assert planned_jobs(sweep)[5] == ["optim=adam", "seed=2", "lr=0.003"]
    jobs = load_sweep(sweep)
    assert [(j.num, j.status) for j in jobs] == [(0, "completed"), (1, "completed"), (2, "failed"),
                                                 (3, "completed"), (4, "interrupted"), (5, "missing")]
    assert jobs[5].overrides == ["optim=adam", "seed=2", "lr=0.003"]
    assert jobs[2].error == "RuntimeError: CUDA out of memory"


def test_mean_and_sample_std():
    mean, std, n = mean_std([0.5, 0.7])
    assert (round(mean, 6), round(std, 6), n) == (0.6, round(math.sqrt(0.02), 6), 2)
    assert mean_std([0.8]) == (0.8, None, 1)
    assert mean_std([]) == (None, None, 0)


def test_optimizer_label_shows_momentum_only_when_used():
    assert optimizer_label({"_target_": "torch.optim.SGD", "momentum": 0.0}) == "SGD"
    assert optimizer_label({"_target_": "torch.optim.SGD", "momentum": 0.9}) == "SGD (momentum 0.9)"
    assert optimizer_label({"_target_": "torch.optim.Adam"}) == "Adam"


def test_summary_aggregates_seeds_and_sorts_by_accuracy(sweep):
    report = build_report(sweep)
    adam, sgd = report.summary_rows
    assert (adam["optimizer"], adam["n"], adam["test/acc"], adam["test/acc std"]) == ("Adam", 1, 0.8, None)
    assert adam["status"] == "1 completed, 1 interrupted, 1 missing"
    assert sgd["optimizer"] == "SGD" and sgd["lr"] == 0.003 and sgd["batch_size"] == 32
    assert sgd["n"] == 2 and sgd["test/acc"] == pytest.approx(0.6)
    assert sgd["test/acc std"] == pytest.approx(0.14142, 1e-4)
    assert sgd["test/acc ± std"] == "0.600 ± 0.141 (n=2)"
    assert sgd["test/recall ± std"] == "0.500 ± 0.141 (n=2)"
    assert sgd["status"] == "2 completed, 1 failed"
    assert sgd["best epoch"] == "1, 1" and sgd["s/epoch"] == 2.0


def test_paper_table_has_per_epoch_train_and_test_columns(sweep):
    sgd = next(r for r in build_report(sweep).paper_rows if r["optimizer"] == "SGD")
    assert sgd["epoch 0 train/loss"] == pytest.approx(1.5)   # seeds 0 and 1: 2.0 and 1.0
    assert sgd["epoch 1 test/acc"] == pytest.approx(0.6)
    assert sgd["epoch 0 test/acc"] == pytest.approx(0.5)
    assert {"epoch 1 train/acc", "epoch 1 test/loss"} <= set(sgd)


def test_failed_and_missing_jobs_get_rerun_commands(sweep):
    report = build_report(sweep)
    assert [j.num for j in report.unfinished] == [2, 4, 5]
    commands = report.rerun_commands()
    assert shlex.split(commands[2]) == ["python", "-m", "garbage_lit.train", "optim=adam", "seed=2", "lr=0.003",
                                        f"hydra.run.dir={sweep.resolve() / '5'}"]
    markdown = report.markdown()
    assert "## Jobs that did not complete" in markdown
    assert "CUDA out of memory" in markdown and all(c in markdown for c in commands)


def test_a_different_split_is_flagged(sweep):
    report = build_report(sweep)
    assert report.split_sha256 == SHA
    assert [j.num for j in report.other_split_jobs] == [1]
    assert "jobs 1 used a different split" in report.markdown()
    same = {r["job"]: r["same_split"] for r in report.job_rows}
    assert same == {0: True, 1: False, 2: None, 3: True, 4: None, 5: None}


def test_bundled_reference_holds_figure_6_as_transcribed_and_figure_7():
    figure6 = require_shared("..", "paper", "figure6.csv")
    bundled = load_reference()
    assert bundled["transcribed"] is True
    entries = {(c["figure"], c["model"]): c for c in bundled["configurations"]}
    with figure6.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:
        entry = entries["figure 6", row["model"]]
        assert (entry["batch_size"], entry["optimizer"], entry["lr"]) == (int(row["batch_size"]), row["optim"],
                                                                           float(row["lr"]))
        values = entry["epochs"][int(row["epoch"])]
        for column in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert values[column.replace("_", "/")] == float(row[column])
    figure7 = entries["figure 7", "resnet18"]
    assert figure7["epochs"][9]["test/acc"] == pytest.approx(91 / 95)
    assert "95-image" in figure7["note"]


def test_paper_comparison_uses_the_reference_and_keeps_unmatched_rows(sweep, tmp_path):
    reference = tmp_path / "reference.yaml"   # made-up test values, not the paper's
    reference.write_text(yaml.safe_dump({"transcribed": True, "source": "test", "configurations": [
        {"model": "resnet18", "batch_size": 32, "optimizer": "SGD", "lr": 0.003,
         "epochs": {0: {"test/acc": 0.45}, 1: {"test/acc": 0.65, "train/loss": None}}},
        {"model": "googlenet", "batch_size": 64, "optimizer": "SGD", "lr": 0.003, "epochs": {0: {"test/acc": 0.5}}}]}))
    rows = build_report(sweep, reference).comparison_rows
    by_key = {(r["model"], r["epoch"], r["metric"]): r for r in rows}
    assert by_key["resnet18", 1, "test/acc"]["ours"] == pytest.approx(0.6)
    assert by_key["resnet18", 1, "test/acc"]["difference"] == pytest.approx(-0.05)
    assert by_key["resnet18", 1, "train/loss"]["note"] == "paper value not transcribed"
    google = by_key["googlenet", 0, "test/acc"]
    assert google["ours"] is None and google["note"] == "configuration not in this sweep"
    assert by_key["resnet18", 1, "test/acc"]["weights"] == "imagenet (resnet18)"
    assert "Weights: ours imagenet (resnet18)" in build_report(sweep, reference).markdown()


def test_random_init_rows_are_marked_not_comparable(sweep):
    for num in (0, 1, 3):
        path = sweep / str(num) / "metrics.json"
        metrics = json.loads(path.read_text())
        path.write_text(json.dumps({**metrics, "weights_source": "none (random init)"}))
    report = build_report(sweep)
    ours = [r for r in report.comparison_rows if r["ours"] is not None]
    assert ours and all(RANDOM_INIT_NOTE in r["note"] for r in ours)
    assert "trained from a random init" in report.markdown()


def test_write_report_files_and_cli(sweep, capsys):
    files = write_report(build_report(sweep))
    assert {p.name for p in files.values()} == {"report.md", "summary.csv", "per_class.csv", "paper_table.csv",
                                               "paper_comparison.csv", "claims.csv", "claim_pairs.csv",
                                               "learning_speed.csv", "jobs.csv", "learning_curves.png",
                                               "accuracy_comparison.png"}
    for name in ("learning_curves.png", "accuracy_comparison.png"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with files["summary.csv"].open() as handle:
        summary = list(csv.DictReader(handle))
    assert [(r["optimizer"], r["n"]) for r in summary] == [("Adam", "1"), ("SGD", "2")]
    assert float(summary[1]["test/acc std"]) == pytest.approx(0.14142, 1e-4)
    with files["jobs.csv"].open() as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["completed", "completed", "failed", "completed",
                                                                  "interrupted", "missing"]
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "## Summary" in out and "3 job(s) did not complete" in out


def test_cli_names_a_wrong_folder(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "no such sweep folder" in capsys.readouterr().err


def test_other_swept_keys_become_columns_and_seeds_pool():
    from garbage_lit.report.jobs import JobResult
    from garbage_lit.report.tables import group_configurations

    config = {"model": {"backbone": "googlenet"}, "optim": {"_target_": "torch.optim.Adam", "lr": 0.01},
              "batch_size": 64, "lr": 0.003}
    jobs = [JobResult(n, Path(str(n)), "completed", ["optim=adam", f"data.image_size={size}", f"seed={seed}"],
                      config, {"final": {"test/acc": 0.1 * n}})
            for n, (size, seed) in enumerate([(32, 0), (32, 1), (64, 0)])]
    configs = group_configurations(jobs)
    assert [(c.settings["data.image_size"], len(c.jobs)) for c in configs] == [("32", 2), ("64", 1)]
    assert configs[0].settings["lr"] == 0.01  # a number in optim.lr wins over the top-level lr
    assert configs[0].final("test/acc") == [0.0, 0.1]


def test_a_reference_entry_without_its_setting_is_refused(tmp_path):
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"configurations": [{"model": "resnet18", "epochs": {0: {"test/acc": 0.5}}}]}))
    with pytest.raises(ValueError, match=r"reference.yaml: configurations\[0\] lacks batch_size, optimizer, lr"):
        load_reference(reference)
    with pytest.raises(FileNotFoundError, match="no paper reference file"):
        load_reference(tmp_path / "missing.yaml")


# -- a sweep off the paper's grid, read by a person ---------------------------------------------------------
@pytest.fixture
def design_card_sweep(tmp_path: Path) -> Path:
    """`-m optim=sgd,adam lr=0.003,0.01 epochs=1 data.image_size=64` with the default efficientnet_lite0."""
    sweep = tmp_path / "design"
    for num, (optim, lr) in enumerate([("sgd", 0.003), ("sgd", 0.01), ("adam", 0.003), ("adam", 0.01)]):
        folder = sweep / str(num)
        (folder / ".hydra").mkdir(parents=True)
        overrides = ["epochs=1", "data.image_size=64", f"optim={optim}", f"lr={lr}"]
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        optim_cfg = {"_target_": f"torch.optim.{'SGD' if optim == 'sgd' else 'Adam'}", "lr": lr,
                     **({"momentum": 0.9} if optim == "sgd" else {})}
        config = {"seed": 0, "lr": lr, "batch_size": 32, "epochs": 1, "optim": optim_cfg,
                  "model": {"arch": "efficientnet_lite0", "weights": "imagenet", "freeze_backbone": True},
                  "data": {"image_size": 64, "resize_size": 72, "test_ratio": 0.2, "val_ratio": 0.0}}
        (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        acc = 0.5 + 0.1 * num
        (folder / "metrics.json").write_text(json.dumps({
            "status": "completed", "weights_source": "imagenet (efficientnet_lite0)", "config": config,
            "seconds_per_epoch": 1.0, "best_epoch": 0, "data": {"root": "/data", "split_manifest_sha256": SHA},
            "final": {"test/acc": acc, "test/recall": acc,
                      "per_class_acc": {"glass": acc, "papier & karton": 1 - acc, "烟蒂": None}},
            "epochs": [{"epoch": 0, "train/loss": 1.0, "train/acc": acc - 0.1, "test/loss": 1.2, "test/acc": acc}]}))
    return sweep


def test_a_sweep_off_the_papers_grid_says_so_once_per_section(design_card_sweep):
    report = build_report(design_card_sweep)
    markdown = report.markdown()
    assert ("None of the paper's configurations (figure 6: resnet18, batch 32, SGD, lr 0.003; figure 6: googlenet, "
            "batch 64, SGD, lr 0.003; figure 7: resnet18, batch 32, SGD, lr 0.003) is in this sweep") in markdown
    assert NOT_IN_SWEEP not in markdown and len(report.comparison_rows) == 20  # the CSV keeps every paper row
    assert [row["verdict"] for row in report.claims.claim_rows] == [NOT_TESTED] * 3
    assert NOT_PAPER_SWEEP in markdown and NONE_TESTED not in markdown and NOT_TESTED not in markdown
    assert {row["verdict"] for row in report.claims.pair_rows} == {NO_CLAIM}  # an lr pair of lite0 is no claim
    assert "| optimizer | SGD (momentum 0.9) | Adam |" in markdown  # the sweep's own comparisons stay


def test_one_job_per_configuration_shows_no_spread(design_card_sweep):
    markdown = build_report(design_card_sweep).markdown()
    assert "## Summary (sorted by final test accuracy; one completed job per configuration, so no spread)" in markdown
    assert "± std" not in markdown.split("## Summary")[1].split("##")[0]


def test_the_per_class_table_holds_each_configurations_mean_over_seeds(design_card_sweep, sweep):
    report = build_report(design_card_sweep)
    rows = {row["class"]: row for row in report.per_class_rows}
    assert list(rows) == ["glass", "papier & karton", "烟蒂"]
    labels = [config.label for config in report.configurations]
    assert [rows["glass"][label] for label in labels] == pytest.approx([0.5, 0.6, 0.7, 0.8])
    assert [rows["papier & karton"][label] for label in labels] == pytest.approx([0.5, 0.4, 0.3, 0.2])
    assert all(rows["烟蒂"][label] is None for label in labels)  # no test image: no accuracy, not 0
    with write_report(report)["per_class.csv"].open(encoding="utf-8") as handle:
        assert [row["class"] for row in csv.DictReader(handle)] == ["glass", "papier & karton", "烟蒂"]
    for num, acc in enumerate((0.2, 0.6)):  # two seeds of one configuration: their mean
        metrics = json.loads((sweep / str(num) / "metrics.json").read_text())
        metrics["final"]["per_class_acc"] = {"glass": acc}
        (sweep / str(num) / "metrics.json").write_text(json.dumps(metrics))
    (row,) = build_report(sweep).per_class_rows
    assert row["class"] == "glass" and pytest.approx(0.4) in row.values()


def test_the_report_states_what_every_job_shared(design_card_sweep):
    markdown = build_report(design_card_sweep).markdown()
    assert ("Every job: command line `epochs=1 data.image_size=64`; epochs=1, data.image_size=64, "
            "data.resize_size=72, data.test_ratio=0.2, data.val_ratio=0.0, model.weights=imagenet, "
            "model.freeze_backbone=true.") in markdown


def test_a_one_epoch_sweep_plots_bars_and_claims_no_learning_speed(design_card_sweep):
    report = build_report(design_card_sweep)
    assert "The sweep ran one epoch: every job is at its final accuracy after it, so no learning speed." \
        in report.markdown()
    loss_axes, acc_axes = learning_curves_figure(report.configurations).axes
    assert acc_axes.get_title() == "accuracy after the sweep's only epoch (epoch 0)"
    bars = {round(bar.get_width(), 6) for bar in acc_axes.patches}
    assert bars == {0.4, 0.5, 0.6, 0.7, 0.8}  # train and test accuracy of the four configurations
    assert write_report(report)["learning_curves.png"].read_bytes()[:4] == b"\x89PNG"


def test_a_sweep_with_some_of_the_papers_configurations_names_the_rest_in_one_line(sweep):
    markdown = build_report(sweep).markdown()
    assert "Not in this sweep: figure 6: googlenet, batch 64, SGD, lr 0.003." in markdown
    assert "| figure 6 | resnet18 | 32 | SGD | 0.003 | 1 | test/acc | 0.7045 | 0.6 |" in markdown
    assert NOT_IN_SWEEP not in markdown


def test_epochs_are_counted_from_0_everywhere_a_person_reads(sweep):
    report = build_report(sweep)
    markdown = report.markdown()
    assert EPOCH_NOTE in markdown
    assert "epoch 0 train/loss / acc" in markdown and "epoch 1 test/loss / acc" in markdown  # metrics.json's 0, 1
    assert {row["epoch"] for row in report.comparison_rows} == {0, 1, 9}  # the paper's figure 6 and figure 7
    assert report.summary_rows[1]["best epoch"] == "1, 1"  # the last of two epochs
    speed = report.claims.speed_rows[0]
    assert speed["first epoch at 95% of final test/acc"] == 1 and speed["epochs run"] == 2
    loss_axes, _ = learning_curves_figure(report.configurations).axes
    assert loss_axes.get_xlabel() == "epoch (counted from 0)"
    assert [line.get_xdata().tolist() for line in loss_axes.get_lines()][0] == [0, 1]


def test_report_shows_calibration_beside_accuracy_and_links_each_jobs_pictures(sweep):
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    metrics["final"].update({"test/ece": 0.04, "temperature": 1.7})
    (sweep / "0" / "metrics.json").write_text(json.dumps(metrics))
    (sweep / "0" / "gallery.png").write_bytes(b"png")
    (sweep / "0" / "coverage.png").write_bytes(b"png")
    report = build_report(sweep)
    sgd = next(row for row in report.summary_rows if row.get("test/acc") == pytest.approx(0.6))
    assert sgd["test/ece"] == pytest.approx(0.04) and sgd["test/ece ± std"] == "0.040 (n=1)"
    markdown = report.markdown()
    assert "test/ece ± std" in markdown.split("## Summary")[1].split("\n\n")[1]
    job0 = next(line for line in markdown.splitlines() if line.startswith("| 0 |"))
    assert "0.04" in job0 and "1.7" in job0 and "[mistakes](0/gallery.png), [coverage](0/coverage.png)" in job0
    job3 = next(line for line in markdown.splitlines() if line.startswith("| 3 |"))
    assert job3.endswith("| - |")  # no pictures: no links
