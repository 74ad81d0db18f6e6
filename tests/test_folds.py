"""Cross-validation as a data option and in the report: stratified k folds (as test, or as validation with the test
split kept apart), refused when they cannot work, recorded in the run, and compared fold by fold."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from pathlib import Path

import pytest
import yaml

from garbage_lit.data import GarbageDataModule
from garbage_lit.data.split import stratified_folds, stratified_split
from garbage_lit.errors import ConfigError, DataError
from garbage_lit.report.sweep import build_report, write_report
from garbage_lit.train import train

LABELS = [0] * 23 + [1] * 12 + [2] * 7


@pytest.mark.parametrize("val_ratio", [0.0, 0.25])
def test_folds_as_test_are_disjoint_stratified_and_test_every_image_once(val_ratio):
    runs = [stratified_folds(LABELS, 5, fold, val_ratio=val_ratio, seed=3) for fold in range(5)]
    tested = [[i for i, split in enumerate(assignment) if split == "test"] for assignment, _ in runs]
    assert sorted(i for fold in tested for i in fold) == list(range(len(LABELS)))  # each image tested once
    for fold, (assignment, of_fold) in enumerate(runs):
        assert of_fold == runs[0][1]  # the same folds whichever is held out
        assert tested[fold] == [i for i, f in enumerate(of_fold) if f == fold]
        per_class = Counter(LABELS[i] for i in tested[fold])
        assert all(math.floor(n / 5) <= per_class[c] <= math.ceil(n / 5) for c, n in Counter(LABELS).items())
        rest = [i for i, split in enumerate(assignment) if split != "test"]
        val = Counter(LABELS[i] for i in rest if assignment[i] == "val")
        rest_per_class = Counter(LABELS[i] for i in rest)
        assert val == Counter({c: round(n * val_ratio) for c, n in rest_per_class.items() if round(n * val_ratio)})
    sizes = Counter(runs[0][1])
    assert max(sizes.values()) - min(sizes.values()) <= 1  # folds differ by one image at most


def test_folds_are_stable_for_a_seed_and_change_with_it():
    first = stratified_folds(LABELS, 4, 1, seed=7)
    assert stratified_folds(LABELS, 4, 1, seed=7) == first
    assert stratified_folds(LABELS, 4, 1, seed=8)[1] != first[1]


def test_folds_as_validation_keep_the_test_split_and_validate_every_other_image_once():
    fixed = stratified_split(LABELS, 0.2, 0.0, seed=0)
    runs = [stratified_folds(LABELS, 3, fold, test_ratio=0.2, seed=0, fold_as="val") for fold in range(3)]
    validated = []
    for assignment, of_fold in runs:
        assert [split == "test" for split in assignment] == [split == "test" for split in fixed]
        assert all((f is None) == (split == "test") for f, split in zip(of_fold, assignment))
        validated += [i for i, split in enumerate(assignment) if split == "val"]
    assert sorted(validated) == [i for i, split in enumerate(fixed) if split == "train"]


@pytest.mark.parametrize(("folds", "fold", "message"), [
    (5, 5, "data.fold=5 is out of range for data.folds=5: use 0 to 4"),
    (5, -1, "data.fold=-1 is out of range for data.folds=5: use 0 to 4"),
    (1, 0, "data.folds=1 must be a whole number of at least 2"),
])
def test_a_fold_out_of_range_is_refused_in_one_line(folds, fold, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        stratified_folds(LABELS, folds, fold)


def test_folds_that_leave_a_class_untested_are_refused(folder_dataset, tmp_path):
    # 10 images a class: 11 folds would leave each class out of one fold's test split.
    module = GarbageDataModule(folder_dataset, batch_size=4, image_size=32, resize_size=36, folds=11, fold=0)
    with pytest.raises(DataError, match=r"data.folds=11: class 'glass' has 10 image\(s\) to deal, so 1 of the 11 "
                                        r"folds would hold none of it as test images; use data.folds=10 or fewer"):
        module.setup("fit")


def test_folds_and_a_split_manifest_are_refused_together(folder_dataset, tmp_path):
    with pytest.raises(ConfigError, match="set one of them"):
        GarbageDataModule(folder_dataset, folds=3, split_manifest=tmp_path / "split_manifest.csv")


def test_a_fold_run_records_its_fold_in_metrics_and_the_manifest(make_cfg, folder_dataset, tmp_path):
    out = tmp_path / "run"
    train(make_cfg("data=folder", f"data.root={folder_dataset}", "data.folds=3", "data.fold=2", "data.val_ratio=0.2",
                   output_dir=out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["fold"] == {"folds": 3, "fold": 2, "as": "test"}
    with (out / "split_manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["fold"] for row in rows} == {"0", "1", "2"}
    assert all((row["split"] == "test") == (row["fold"] == "2") for row in rows)
    assert metrics["data"]["split_sizes"] == {"train": 17, "val": 3, "test": 10}  # val: 0.2 of 6-7 images a class


def _fold_job(sweep: Path, num: int, optim: str, fold: int, acc: float) -> None:
    """A completed job folder of ``-m optim=... data.fold=...`` as train.py leaves it."""
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"optim={optim}", f"data.fold={fold}",
                                                                     "data.folds=3"]))
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "lr": 0.003, "batch_size": 32, "model": {"arch": "resnet18"},
         "optim": {"algorithm": optim, "lr": "${lr}"}}))
    (folder / "metrics.json").write_text(json.dumps({
        "status": "completed", "config": {"seed": 0},
        "data": {"root": "/data", "split_manifest_sha256": f"{fold}" * 64, "fold": {"folds": 3, "fold": fold,
                                                                                  "as": "test"}},
        "final": {"test/acc": acc, "test/recall": acc}, "epochs": []}))


def test_the_report_gives_mean_sd_over_folds_and_paired_differences_computed_by_hand(tmp_path):
    sweep = tmp_path / "sweep"
    sgd, adam = [0.80, 0.86, 0.77], [0.85, 0.90, 0.80]
    for fold in range(3):
        _fold_job(sweep, fold, "sgd", fold, sgd[fold])
        _fold_job(sweep, 3 + fold, "adam", fold, adam[fold])
    report = build_report(sweep)

    assert len(report.configurations) == 2  # the folds of a configuration are one row
    rows = {row["optimizer"]: row for row in report.fold_rows}
    for name, values in (("sgd", sgd), ("adam", adam)):
        assert rows[name]["folds"] == 3
        assert rows[name]["test/acc"] == pytest.approx(statistics.fmean(values))
        assert rows[name]["test/acc sd"] == pytest.approx(statistics.stdev(values))
    (pair,) = report.fold_pair_rows
    differences = [a - s for a, s in zip(adam, sgd)]  # 0.05, 0.04, 0.03: mean 0.04, sd 0.01
    half = 4.302652729911275 * statistics.stdev(differences) / math.sqrt(3)  # Student t, 2 degrees of freedom, 95%
    assert (pair["first"], pair["second"], pair["n"]) == ("resnet18 batch_size=32 adam lr=0.003",
                                                          "resnet18 batch_size=32 sgd lr=0.003", 3)
    assert pair["difference"] == pytest.approx(0.04) and pair["sd"] == pytest.approx(0.01)
    assert (pair["low"], pair["high"]) == (pytest.approx(0.04 - half), pytest.approx(0.04 + half))
    assert pair["verdict"] == "above 0"

    files = write_report(report)
    text = files["report.md"].read_text()
    assert "## Cross-validation folds" in text and "its test split: test/acc of the kept epoch" in text
    assert "within each fold every job that recorded one used the same split" in text
    with files["fold_pairs.csv"].open(newline="") as handle:
        assert [r["verdict"] for r in csv.DictReader(handle)] == ["above 0"]
