"""Using a trained checkpoint: evaluate, predict and export (with parity against the checkpoint)."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from garbage_lit.data.images import load_rgb
from garbage_lit.errors import CheckpointError, ConfigError
from garbage_lit.evaluate import evaluate
from garbage_lit.export import ONNX_INSTALL, export, sidecar_path
from garbage_lit.models.loading import eval_transform, load_classifier
from garbage_lit.predict import predict
from garbage_lit.train import train

from helpers import TEST_ACC
from helpers.config import compose_app, compose_fast_cfg
from helpers.data import REPO, make_folder_dataset, make_garbage_classify, require_shared, write_image
from helpers.models import save_untrained_checkpoint

TRASHNET_CLASSES = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]




@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny model trained for 1 epoch on 3 colour classes; its dataset and run folder."""
    base = tmp_path_factory.mktemp("trained")
    data = make_folder_dataset(base / "data")
    run = base / "run"
    train(compose_fast_cfg(base, "data=folder", f"data.root={data}", output_dir=run))
    return {"data": data, "run": run, "ckpt": run / "checkpoints" / "model.ckpt",
            "metrics": json.loads((run / "metrics.json").read_text())}


# -- evaluate ------------------------------------------------------------------------------------
def test_evaluate_matches_training_test_split_and_writes_report(trained, tmp_path):
    out = tmp_path / "eval"
    cfg = compose_app("evaluate", out, f"ckpt={trained['ckpt']}", "data=folder", f"data.root={trained['data']}",
                      "split=test")
    report = evaluate(cfg)

    # The same checkpoint on the same (seeded) test split gives the accuracy training reported.
    assert report["images"] == 6
    assert report[TEST_ACC] == pytest.approx(trained["metrics"]["final"][TEST_ACC], abs=1e-6)
    assert report["confusion_matrix"] == trained["metrics"]["final"]["confusion_matrix"]
    confusion = np.array(report["confusion_matrix"])
    assert report[TEST_ACC] == pytest.approx(np.trace(confusion) / confusion.sum())
    recalls = [row["recall"] for row in report["per_class"] if row["support"]]
    assert report["test/recall"] == pytest.approx(np.mean(recalls))
    for row in report["per_class"]:
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["f1"] <= 1.0
    for pair in report["most_confused"]:
        assert pair["true"] != pair["predicted"] and pair["count"] > 0

    written = json.loads((out / "evaluation.json").read_text())
    assert written["test/acc"] == report["test/acc"] and written["split"] == "test"
    with (out / "per_class.csv").open() as handle:
        assert {row["class"] for row in csv.DictReader(handle)} <= {"glass", "metal", "paper"}
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_evaluate_accepts_a_subset_of_classes_and_names_unknown_ones(trained, tmp_path, caplog):
    subset = make_folder_dataset(tmp_path / "subset", ("glass", "paper"))
    with caplog.at_level(logging.INFO, logger="garbage_lit.data.index"):
        report = evaluate(compose_app("evaluate", tmp_path / "sub", f"ckpt={trained['ckpt']}", "data=folder",
                                      f"data.root={subset}"))
    assert report["images"] == 20 and report["classes_evaluated"] == 2
    # split=all evaluates every image: the log names the data, not a train/val/test split it does not use
    assert f"data: {subset} (folder layout), 2 classes, 20 images\n" in caplog.text + "\n"
    assert "split train" not in caplog.text
    assert {row["class"] for row in report["per_class"] if row["support"]} == {"glass", "paper"}

    other = make_folder_dataset(tmp_path / "other", ("glass", "wood"))
    with pytest.raises(ValueError, match=r"\['wood'\] are not among the checkpoint's classes \['glass', 'metal', "
                                         r"'paper'\]"):
        evaluate(compose_app("evaluate", tmp_path / "bad", f"ckpt={trained['ckpt']}", "data=folder",
                             f"data.root={other}"))


# -- predict -------------------------------------------------------------------------------------
def test_predict_folder_and_files_with_error_rows(trained, tmp_path, caplog):
    photos = tmp_path / "photos"
    write_image(photos / "a.jpg", (200, 40, 40), seed=1)
    write_image(photos / "nested" / "b.png", (40, 40, 200), seed=2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "pred"
    cfg = compose_app("predict", out, f"ckpt={trained['ckpt']}",
                      f"inputs=[{photos},{broken},{tmp_path / 'missing.jpg'}]", "top_k=2", "num_workers=2",
                      "batch_size=2")
    with caplog.at_level(logging.INFO, logger="garbage_lit.predict"):
        rows = predict(cfg)

    by_name = {Path(row["file"]).name: row for row in rows}
    assert set(by_name) == {"a.jpg", "b.png", "broken.jpg", "missing.jpg"}
    assert "2 predicted, 1 skipped (missing.jpg: no such file or folder), 1 failed (broken.jpg: unreadable image" \
        in caplog.text
    assert by_name["broken.jpg"]["error"].startswith("unreadable image") and by_name["broken.jpg"]["top"] == []
    assert (by_name["broken.jpg"]["status"], by_name["missing.jpg"]["status"]) == ("failed", "skipped")
    assert by_name["missing.jpg"]["error"] == "no such file or folder"
    model = load_classifier(trained["ckpt"])
    for name in ("a.jpg", "b.png"):
        row = by_name[name]
        assert row["error"] == "" and len(row["top"]) == 2
        probs = [t["probability"] for t in row["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
        with torch.no_grad():
            expected = model(eval_transform(model)(load_rgb(row["file"]))[None]).softmax(1)[0]
        assert row["top"][0]["class"] == model.class_names[int(expected.argmax())]
        assert probs[0] == pytest.approx(float(expected.max()), abs=1e-5)

    with (out / "predictions.csv").open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["file", "status", "error", "decision", "top1_class", "top1_probability", "top2_class",
                              "top2_probability"]
    assert all(row["decision"] == ("" if row["error"] else row["top1_class"]) for row in table)  # no threshold set
    assert len(table) == 4 and sum(1 for row in table if row["error"]) == 2
    assert json.loads((out / "predictions.json").read_text())["predictions"] == rows


@pytest.mark.parametrize("with_a_good_image, exit_status", [(False, 1), (True, 0)], ids=["none-good", "one-good"])
def test_predict_exits_non_zero_only_when_nothing_could_be_predicted(trained, tmp_path, with_a_good_image,
                                                                     exit_status):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    inputs = [broken, tmp_path / "missing.jpg"] + ([trained["data"] / "glass" / "glass0.jpg"] if with_a_good_image
                                                   else [])
    out = tmp_path / "pred"
    done = subprocess.run([sys.executable, "-m", "garbage_lit.predict", f"ckpt={trained['ckpt']}",
                           f"inputs=[{','.join(map(str, inputs))}]", "num_workers=0", f"hydra.run.dir={out}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == exit_status, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert f"{int(with_a_good_image)} predicted, 1 skipped (missing.jpg: no such file or folder), 1 failed " \
           f"(broken.jpg: unreadable image" in output
    assert ("no input could be predicted: 0 predicted, 1 skipped" in output) == (not with_a_good_image)
    assert "Traceback" not in output
    with (out / "predictions.csv").open(encoding="utf-8") as handle:
        assert [Path(row["file"]).name for row in csv.DictReader(handle)] == [p.name for p in inputs]  # none lost


def test_predict_names_garbage_classify_groups_in_chinese_and_english(tmp_path):
    names = ["其他垃圾/烟蒂", "厨余垃圾/蛋壳", "可回收物/易拉罐", "有害垃圾/干电池"]
    ckpt = save_untrained_checkpoint(tmp_path / "gc.ckpt", "resnet18", names)
    photo = write_image(tmp_path / "p.jpg", (90, 90, 90), seed=3)
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={ckpt}", f"inputs=[{photo}]", "top_k=4",
                               "num_workers=0"))
    groups = {t["class"]: (t["group_zh"], t["group_en"]) for t in rows[0]["top"]}
    assert groups == {"其他垃圾/烟蒂": ("其他垃圾", "other"), "厨余垃圾/蛋壳": ("厨余垃圾", "kitchen"),
                      "可回收物/易拉罐": ("可回收物", "recyclable"), "有害垃圾/干电池": ("有害垃圾", "hazardous")}
    with (tmp_path / "pred" / "predictions.csv").open(encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert row["top1_group_en"] in {"other", "kitchen", "recyclable", "hazardous"}


def test_evaluate_garbage_classify_subset_against_larger_model(tmp_path):
    data = make_garbage_classify(tmp_path / "gc", [label for label in (0, 2) for _ in range(5)], num_rule_classes=4)
    ckpt = save_untrained_checkpoint(tmp_path / "gc.ckpt", "resnet18", [f"group/class{i}" for i in range(6)])
    report = evaluate(compose_app("evaluate", tmp_path / "ev", f"ckpt={ckpt}", "data=garbage_classify",
                                  f"data.root={data}"))
    assert report["images"] == 10 and report["classes_evaluated"] == 2
    supports = {row["class"]: row["support"] for row in report["per_class"] if row["support"]}
    assert supports == {"group/class0": 5, "group/class2": 5}


# -- export --------------------------------------------------------------------------------------
@pytest.fixture
def googlenet_imagenet_like(tmp_path) -> Path:
    """A full GoogLeNet state dict file, so the classifier is built in the pretrained layout (transform_input)."""
    path = tmp_path / "googlenet_state.pth"
    torch.save(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).state_dict(), path)
    return path


def checkpoint_and_expected_logits(backbone: str, tmp_path: Path, googlenet_state: Path) -> tuple[Path, torch.Tensor,
                                                                                                 torch.Tensor]:
    """A checkpoint of ``backbone`` (GoogLeNet in its pretrained layout), a batch and the checkpoint's logits."""
    weights = str(googlenet_state) if backbone == "googlenet" else "none"
    ckpt = save_untrained_checkpoint(tmp_path / "m.ckpt", backbone, ["a", "b", "c"], image_size=64, weights=weights)
    model = load_classifier(ckpt)
    if backbone == "googlenet":
        assert model.backbone.transform_input  # rebuilt in the layout it was trained with
    images = torch.randn(3, 3, 64, 64)  # another batch size than the export example: the batch axis is dynamic
    with torch.no_grad():
        return ckpt, images, model(images)


# efficientnet_lite0 has ReLU6 and its own TF-style padding; GoogLeNet remaps its input (transform_input).
@pytest.mark.parametrize("backbone", ["resnet18", "googlenet", "efficientnet_lite0"])
def test_export_onnx_matches_the_checkpoint(backbone, tmp_path, googlenet_imagenet_like):
    import onnxruntime

    ckpt, images, expected = checkpoint_and_expected_logits(backbone, tmp_path, googlenet_imagenet_like)
    onnx_file = export(ckpt, "onnx", tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-4)

    meta = json.loads(sidecar_path(onnx_file).read_text())
    assert meta["class_names"] == ["a", "b", "c"] and meta["backbone"] == backbone and meta["format"] == "onnx"
    assert meta["preprocessing"]["image_size"] == 64 and meta["preprocessing"]["resize_size"] == 68
    assert meta["preprocessing"]["mean"] == [0.485, 0.456, 0.406] and meta["input"]["name"] == "images"


def test_export_torchscript_matches_the_checkpoint(tmp_path, googlenet_imagenet_like):
    ckpt, images, expected = checkpoint_and_expected_logits("googlenet", tmp_path, googlenet_imagenet_like)
    script_file = export(ckpt, "torchscript", tmp_path / "m.pt")
    with torch.no_grad():
        logits = torch.jit.load(str(script_file))(images)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert json.loads(sidecar_path(script_file).read_text())["model_file"] == "m.pt"


def test_export_install_hint_is_the_one_the_docs_give(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    with pytest.raises(ConfigError) as error:
        export(tmp_path / "any.ckpt", "onnx", tmp_path / "m.onnx")
    assert str(error.value) == "format=onnx needs the onnx package: pip install 'garbage-lit[export]' (or " \
                               "format=torchscript)"
    assert f"`{ONNX_INSTALL}`" in (REPO / "docs" / "using_a_model.md").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()  # the package and extra the hint names (no tomllib on 3.10)
    assert 'name = "garbage-lit"' in pyproject and "\nexport = [\n" in pyproject


def test_export_rejects_unknown_format_and_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="ckpt=.*nope.ckpt: no such checkpoint"):
        export(tmp_path / "nope.ckpt", "onnx", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="format='tflite' is not supported"):
        export(tmp_path / "nope.ckpt", "tflite", tmp_path / "m.tflite")


# -- real data -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_and_predict_on_trashnet(tmp_path):

    trashnet = require_shared("trashnet")
    ckpt = save_untrained_checkpoint(tmp_path / "tiny.ckpt", "resnet18", TRASHNET_CLASSES)
    out = tmp_path / "eval"
    report = evaluate(compose_app("evaluate", out, f"ckpt={ckpt}", "data=folder", f"data.root={trashnet}",
                                  "split=test", "num_workers=2"))
    with (out / "split_manifest.csv").open() as handle:
        test_rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    assert report["images"] == len(test_rows) > 450 and report["classes_evaluated"] == 6
    assert sum(map(sum, report["confusion_matrix"])) == report["images"]

    trash = sorted((trashnet / "trash").glob("*.jpg"))
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={ckpt}", f"inputs=[{trashnet / 'trash'}]",
                               "num_workers=2"))
    assert [Path(row["file"]) for row in rows] == trash
    assert all(row["error"] == "" and row["top"][0]["class"] in TRASHNET_CLASSES for row in rows)
