"""Class names with any character a folder name may hold: every tracker gets every metric (renamed where its rules
refuse a character, with the mapping in the run), every picture names the classes or numbers them with a legend, and
the data set trains, sweeps, reports, predicts, evaluates and exports."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from garbage_lit.insight import fonts
from garbage_lit.insight.confusion import confusion_figure
from garbage_lit.insight.fonts import class_labels
from garbage_lit.insight.gallery import gallery_png, prediction_tiles
from garbage_lit.loggers.keys import MLFLOW, WANDB, KeyMap, legal_key

from helpers.data import CLASS_COLOURS, write_image
from helpers.sweeps import run_sweep
from helpers.trackers import mlflow_server, wandb_offline_runs

# & + ( ) , ' # % ü ö é, Cyrillic and Chinese: the characters the issue names, one class each.
CLASSES = ("papier & karton", "glas+grün (öl), café's", "Пластик #2 50%", "烟蒂")
NOT_LOGGED_AS_IS = ("epoch", "seconds", "lr")


def make_dataset(root: Path) -> Path:
    for label, name in enumerate(CLASSES):
        for i in range(10):
            write_image(root / name / f"foto {i}.jpg", CLASS_COLOURS[label], seed=100 * label + i)
    return root


def metric_keys(metrics: dict) -> set[str]:
    """Every per-epoch and final metric a run logged, as metrics.json names it."""
    keys = {key for row in metrics["epochs"] for key in row} - set(NOT_LOGGED_AS_IS)
    return keys | {key for key in metrics["final"] if key.startswith("test/") and "/" in key}


# -- the one function that makes names legal ----------------------------------------------------------------------
def test_names_become_legal_for_each_tracker_and_stay_distinct():
    assert legal_key("test/acc", MLFLOW) == legal_key("test/acc", WANDB) == "test/acc"  # a legal key is kept
    assert legal_key("test/per_class_acc/papier & karton", MLFLOW) == "test/per_class_acc/papier _ karton"
    assert legal_key("test/per_class_acc/glas grün", MLFLOW) == "test/per_class_acc/glas grün"  # any script's letters
    assert legal_key("test/per_class_acc/glas grün", WANDB) == "test/per_class_acc/glas_grun"   # accents folded
    cjk = legal_key("test/per_class_acc/烟蒂", WANDB)
    assert cjk.startswith("test/per_class_acc/h") and cjk == legal_key("test/per_class_acc/烟蒂", WANDB)  # stable
    assert legal_key("test/per_class_acc/..", MLFLOW) != "test/per_class_acc/.."  # never a path that resolves away
    assert len(legal_key("test/" + "x" * 400, MLFLOW)) <= 250
    keys = KeyMap(WANDB)
    keys.plan(["test/per_class_acc/papier & karton", "test/per_class_acc/papier + karton", "test/acc"])
    renamed = {row["key"]: row["logged_as"] for row in keys.renamed()}
    assert set(renamed) == {"test/per_class_acc/papier & karton", "test/per_class_acc/papier + karton"}
    assert len(set(renamed.values())) == 2  # both were papier_karton: each got its own hash
    assert keys("test/acc") == "test/acc"


# -- every tracker gets every metric ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2-job sweep on the data set with the odd names, logged to TensorBoard, CSV and W&B (offline)."""
    base = tmp_path_factory.mktemp("names")
    data = make_dataset(base / "data")
    folder = base / "sweep"
    done = run_sweep(folder, data, "optim=sgd,adam", "epochs=2", "data.val_ratio=0.2",
                     "logger=[tensorboard,csv,wandb]", "logger.wandb.mode=offline")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, data


@pytest.mark.slow
def test_every_tracker_logs_every_metric_of_odd_class_names(sweep):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    folder, _ = sweep
    runs = {run.name: run for run in wandb_offline_runs(folder)}
    for job, name in enumerate(("optim=sgd", "optim=adam")):
        metrics = json.loads((folder / str(job) / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["data"]["class_names"] == sorted(CLASSES)
        keys = metric_keys(metrics)
        assert {f"val/per_class_acc/{c}" for c in CLASSES} <= keys
        # W&B: each key under its legal name, and the run's table says which is which.
        expected = KeyMap(WANDB)
        expected.plan(sorted(keys))
        run = runs[name]
        for key in keys:
            assert run.values(expected(key)), key
        assert run.values("metric_keys/nrows") and run.values("metric_keys/nrows")[0] >= len(CLASSES)
        # CSV and TensorBoard: the names as they are.
        with (folder / str(job) / "csv" / "metrics.csv").open(encoding="utf-8") as handle:
            assert keys <= set(next(csv.reader(handle)))
        multiplexer = EventMultiplexer().AddRunsFromDirectory(str(folder / str(job) / "tensorboard"))
        multiplexer.Reload()
        assert keys <= set().union(*(tags["scalars"] for tags in multiplexer.Runs().values()))


@pytest.mark.slow
@pytest.mark.mlflow
def test_mlflow_gets_every_metric_of_odd_class_names_with_the_mapping(tmp_path):
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    uri = mlflow_server()
    data = make_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    experiment = f"names-{uuid.uuid4().hex}"  # the server outlives test sessions, whose folder names repeat
    done = subprocess.run([sys.executable, "-m", "garbage_lit.train", "debug=fast", "data=folder", f"data.root={data}",
                           "epochs=2", "data.val_ratio=0.2", "logger=[tensorboard,mlflow]",
                           f"logger.mlflow.tracking_uri={uri}", f"logger.mlflow.experiment_name={experiment}",
                           f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    files = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "artifacts"),
                                                     tracking_uri=uri))
    with (files / "metric_keys.csv").open(encoding="utf-8") as handle:
        logged_as = {row["key"]: row["logged_as"] for row in csv.DictReader(handle)}
    assert "test/per_class_acc/papier & karton" in logged_as and "val/per_class_acc/烟蒂" not in logged_as
    for key in metric_keys(metrics):
        history = client.get_metric_history(run.info.run_id, logged_as.get(key, key))
        assert len(history) >= 1, key


# -- pictures ----------------------------------------------------------------------------------------------------
def test_names_are_drawn_when_a_font_has_their_glyphs_else_numbered_with_a_legend(monkeypatch):
    latin = class_labels(["papier & karton", "glas grün", "Пластик"])  # DejaVu Sans draws all three
    assert latin.labels == ["papier & karton", "glas grün", "Пластик"] and latin.legend is None
    assert latin.family[0] == "DejaVu Sans"
    monkeypatch.setattr(fonts, "font_for", lambda character: None if ord(character) > 0x3000 else fonts.Font(
        "DejaVu Sans", ""))  # as on a machine without a CJK font
    numbered = class_labels(["papier & karton", "烟蒂"])
    assert numbered.labels == ["0", "1"]  # the class's index in the model's order: one numbering everywhere
    assert numbered.legend == ["0: papier & karton", "1: \\u70df\\u8482"]


def test_a_chinese_name_is_drawn_with_an_installed_cjk_font():
    if fonts.fonts_for(["烟蒂"]) is None:
        from helpers.system import missing

        missing("no installed font draws Chinese (Debian: apt install fonts-noto-cjk)", "GARBAGE_LIT_REQUIRE_FONTS")
    labels = class_labels(["glass", "烟蒂"])
    assert labels.labels == ["glass", "烟蒂"] and labels.legend is None and len(labels.family) == 2


def test_the_gallery_and_the_confusion_matrix_number_classes_by_the_models_order(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(fonts, "font_for", lambda character: None if ord(character) > 0x3000 else fonts.Font(
        "DejaVu Sans", str(Path(fonts.installed_fonts()[0].path))))
    names = ["glass", "metal", "烟蒂"]
    paths = [write_image(tmp_path / f"{i}.jpg", CLASS_COLOURS[i], seed=i) for i in range(3)]
    probs, targets = torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]), torch.tensor([2, 1, 1])
    tiles = prediction_tiles([0, 1], probs, targets, paths, names)
    assert tiles[0].caption.splitlines()[:2] == ["true 2", "predicted 2"]  # numbers, not names
    assert tiles[1].caption.splitlines()[:2] == ["true 1", "predicted 0"]
    png = gallery_png([("mistakes", tiles)], names)
    assert Image.open(io.BytesIO(png)).size[0] > 0
    figure = confusion_figure([[1, 0], [0, 1]], names, shown=[0, 2])  # evaluate on data holding two of the classes
    ticks = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert ticks == ["0", "2"]  # the model's numbers, as in the training run's pictures
    assert any("2: \\u70df\\u8482" in text.get_text() for text in figure.texts)


# -- the whole path: report, predict, evaluate, export ---------------------------------------------------------
@pytest.mark.slow
def test_odd_class_names_report_predict_evaluate_and_export(sweep, tmp_path):
    from garbage_lit.report.__main__ import main as report_main

    folder, data = sweep
    assert report_main([str(folder)]) == 0
    with (folder / "per_class.csv").open(encoding="utf-8") as handle:
        assert sorted(row["class"] for row in csv.DictReader(handle)) == sorted(CLASSES)
    ckpt = folder / "0" / "checkpoints" / "model.ckpt"
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache")}
    for command in (["predict", f"ckpt={ckpt}", f"inputs_file={_listing(tmp_path, data)}"],
                    ["evaluate", f"ckpt={ckpt}", "data=folder", f"data.root={data}"],
                    ["export", f"ckpt={ckpt}", "format=torchscript"]):
        done = subprocess.run([sys.executable, "-m", f"garbage_lit.{command[0]}", *command[1:]], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    (predicted,) = (tmp_path / "outputs" / "predict").glob("*/*/predictions.csv")
    with predicted.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(row["status"] == "predicted" and row["top1_class"] in CLASSES for row in rows)
    (evaluation,) = (tmp_path / "outputs" / "evaluate").glob("*/*/evaluation.json")
    assert {row["class"] for row in json.loads(evaluation.read_text())["per_class"]} == set(CLASSES)
    (sidecar,) = (tmp_path / "outputs" / "export").glob("*/*/model.pt.json")
    assert json.loads(sidecar.read_text())["class_names"] == sorted(CLASSES)


def _listing(folder: Path, data: Path) -> Path:
    """A list of one photo per class, with their spaces, & and brackets, one per line (predict's inputs_file)."""
    listing = folder / "photos.txt"
    listing.write_text("\n".join(str(data / name / "foto 0.jpg") for name in CLASSES) + "\n", encoding="utf-8")
    return listing
