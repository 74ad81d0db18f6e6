"""What a model gets wrong and how sure it is: the gallery, ECE, temperature scaling, the unsure threshold."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from garbage_lit.data.images import load_rgb
from garbage_lit.evaluate import evaluate
from garbage_lit.export import export, sidecar_path
from garbage_lit.insight.calibration import reliability_bins
from garbage_lit.insight.coverage import coverage_table
from garbage_lit.insight.gallery import (
    gallery_indices,
    least_confident_correct,
    mistakes_gallery,
    most_confident_mistakes,
    prediction_tiles,
)
from garbage_lit.models.backbones import create_backbone
from garbage_lit.models.calibration import expected_calibration_error, fit_temperature
from garbage_lit.models.loading import eval_transform, load_classifier
from garbage_lit.predict import UNSURE, predict
from garbage_lit.train import train

from helpers.config import compose_app, compose_fast_cfg
from helpers.data import CLASS_COLOURS, make_folder_dataset, write_image

CLASSES = ["glass", "metal", "paper"]




# -- the gallery ---------------------------------------------------------------------------------
def test_gallery_shows_the_requested_tiles_with_true_and_predicted_classes(tmp_path):
    paths = [write_image(tmp_path / f"{i}.jpg", CLASS_COLOURS[i % 3], seed=i) for i in range(8)]
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    # images 1, 4 and 6 are wrong (with confidence 0.9, 0.6, 0.8); the others right (0.95, 0.5, 0.7, 0.55, 0.99)
    predicted = [0, 2, 2, 0, 0, 2, 1, 1]
    confidence = [0.95, 0.9, 0.5, 0.7, 0.6, 0.55, 0.8, 0.99]
    probs = torch.zeros(8, 3)
    for i, (pred, p) in enumerate(zip(predicted, confidence)):
        probs[i] = (1 - p) / 2
        probs[i, pred] = p

    assert most_confident_mistakes(probs, targets, 2) == [1, 6]
    assert least_confident_correct(probs, targets, 2) == [2, 5]
    indices = gallery_indices(probs, targets, 2)
    titles = [tile.caption for tile in prediction_tiles(indices, probs, targets, paths, CLASSES,
                                                        ["recyclable", "recyclable", "paper bin"])]
    assert len(titles) == 4  # 2 mistakes + 2 least confident correct answers
    assert titles[0].splitlines() == ["true metal [recyclable]", "predicted paper [paper bin]", "p = 0.900"]
    assert titles[1].splitlines() == ["true glass [recyclable]", "predicted metal [recyclable]", "p = 0.800"]
    assert titles[2].splitlines() == ["true paper [paper bin]", "predicted paper [paper bin]", "p = 0.500"]
    assert titles[3].splitlines()[:2] == ["true paper [paper bin]", "predicted paper [paper bin]"]
    png = mistakes_gallery(probs, targets, paths, CLASSES, 2, bins=["recyclable", "recyclable", "paper bin"])
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.width > 600 and picture.height > 300
        # tile 1's photo (a metal-coloured image) sits at the top left of the first block
        assert picture.getpixel((110, 100))[1] > picture.getpixel((110, 100))[0]

    # more asked than there are: every mistake (3) and every correct answer (5), no empty tile drawn as a photo
    assert len(gallery_indices(probs, targets, 10)) == 8


# -- calibration ---------------------------------------------------------------------------------
def test_ece_is_zero_when_confidence_matches_accuracy_and_the_gap_otherwise():
    # 10 photos, each predicted with probability 0.8, 8 of them right: perfectly calibrated
    probs = torch.tensor([[0.8, 0.2]] * 10)
    targets = torch.tensor([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, targets) == pytest.approx(0.0, abs=1e-6)
    # the same confidence with only half right: off by 0.3
    assert expected_calibration_error(probs, torch.tensor([0] * 5 + [1] * 5)) == pytest.approx(0.3, abs=1e-6)
    bins = [row for row in reliability_bins(probs, targets) if row["images"]]
    assert len(bins) == 1 and bins[0]["confidence"] == pytest.approx(0.8) and bins[0]["accuracy"] == pytest.approx(0.8)


def test_fitted_temperature_recovers_the_one_the_labels_were_drawn_with_and_lowers_ece():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 4, generator=generator) * 4
    targets = torch.multinomial((logits / 2.5).softmax(dim=1), 1, generator=generator).flatten()
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(2.5, rel=0.05)
    raw = expected_calibration_error(logits.softmax(dim=1), targets)
    scaled = expected_calibration_error((logits / temperature).softmax(dim=1), targets)
    assert raw > 0.1 and scaled < 0.02


def test_coverage_table_counts_answered_photos_and_their_accuracy():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    targets = torch.tensor([0, 1, 1, 0])  # right, wrong, right, wrong
    rows = {row["threshold"]: row for row in coverage_table(probs, targets, (0.0, 0.6, 0.8, 0.95))}
    assert rows[0.0]["coverage"] == 1.0 and rows[0.0]["accuracy"] == 0.5
    assert rows[0.6]["answered"] == 3 and rows[0.6]["accuracy"] == pytest.approx(2 / 3)
    assert rows[0.8]["answered"] == 1 and rows[0.8]["accuracy"] == 1.0 and rows[0.8]["unsure"] == 3
    assert rows[0.95]["coverage"] == 0.0 and rows[0.95]["accuracy"] is None


# -- a run with a validation split: temperature saved, reloaded, applied ------------------------
@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory) -> dict:
    """A tiny model trained for 2 epochs on 3 colour classes with a validation split (so a temperature is fitted)."""
    base = tmp_path_factory.mktemp("calibrated")
    data = make_folder_dataset(base / "data")
    run = base / "run"
    train(compose_fast_cfg(base, "data=folder", f"data.root={data}", "data.val_ratio=0.25", "epochs=2",
                           output_dir=run))
    return {"base": base, "data": data, "run": run, "ckpt": run / "checkpoints" / "model.ckpt",
            "final": json.loads((run / "metrics.json").read_text())["final"]}


def test_temperature_is_fitted_on_validation_and_kept_in_the_checkpoint(calibrated_run):
    final = calibrated_run["final"]
    assert final["temperature"] is not None and final["temperature"] > 0
    assert {"val/ece", "val/ece_raw", "test/ece", "test/ece_raw"} <= set(final)
    model = load_classifier(calibrated_run["ckpt"])
    assert model.temperature == pytest.approx(final["temperature"])

    # the final test's ECE is that of the calibrated probabilities of its test images
    run = calibrated_run["run"]
    with (run / "test_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    photos = [load_rgb(calibrated_run["data"] / row["file"]) for row in rows]
    logits = model(torch.stack([eval_transform(model)(photo) for photo in photos])).detach()
    targets = torch.tensor([CLASSES.index(row["label"]) for row in rows])
    assert final["test/ece"] == pytest.approx(
        expected_calibration_error((logits / final["temperature"]).softmax(dim=1), targets), abs=1e-5)
    assert final["test/ece_raw"] == pytest.approx(expected_calibration_error(logits.softmax(dim=1), targets), abs=1e-5)
    for row, p in zip(rows, (logits / final["temperature"]).softmax(dim=1).max(dim=1).values.tolist()):
        assert float(row["probability"]) == pytest.approx(p, abs=1e-4)

    # the final test's pictures and coverage table
    for name in ("gallery.png", "reliability.png", "coverage.png"):
        with Image.open(run / name) as png:
            assert png.width > 200 and png.height > 200
    with (run / "coverage.csv").open() as handle:
        coverage = list(csv.DictReader(handle))
    assert float(coverage[0]["threshold"]) == 0.0 and int(coverage[0]["answered"]) == len(rows)
    # ... also as TensorBoard images, beside the test/ece scalar
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"test/gallery", "test/reliability", "test/coverage"} <= set(events.Tags()["images"])
    assert "test/ece" in events.Tags()["scalars"]


def test_predict_applies_the_temperature_and_answers_unsure_below_the_threshold(calibrated_run, tmp_path):
    model = load_classifier(calibrated_run["ckpt"])
    photos = sorted((calibrated_run["data"]).rglob("*.jpg"))
    logits = model(torch.stack([eval_transform(model)(load_rgb(p)) for p in photos])).detach()
    expected = (logits / model.temperature).softmax(dim=1)
    tops = expected.max(dim=1).values
    threshold = float(tops.median())  # about half the photos fall below it

    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={calibrated_run['ckpt']}",
                               f"inputs=[{calibrated_run['data']}]", f"threshold={threshold}", "num_workers=0"))
    by_file = {Path(row["file"]): row for row in rows}
    unsure = 0
    for photo, probs, top in zip(photos, expected, tops.tolist()):
        row = by_file[photo]
        assert row["top"][0]["probability"] == pytest.approx(top, abs=1e-5)  # calibrated, not the plain softmax
        assert row["top"][0]["class"] == CLASSES[int(probs.argmax())]
        assert row["decision"] == (UNSURE if top < threshold else row["top"][0]["class"])
        unsure += row["decision"] == UNSURE
    assert 0 < unsure < len(photos)
    with (tmp_path / "pred" / "predictions.csv").open() as handle:
        assert sum(r["decision"] == UNSURE for r in csv.DictReader(handle)) == unsure


def test_exported_sidecar_carries_the_temperature(calibrated_run, tmp_path):
    model = load_classifier(calibrated_run["ckpt"])
    output = export(calibrated_run["ckpt"], "torchscript", tmp_path / "model.pt")
    card = json.loads(sidecar_path(output).read_text())
    assert card["temperature"] == pytest.approx(model.temperature)
    scripted = torch.jit.load(str(output))
    image = eval_transform(model)(load_rgb(next(calibrated_run["data"].rglob("*.jpg"))))[None]
    probs = (scripted(image) / card["temperature"]).softmax(dim=1)  # as the sidecar tells a user to
    assert torch.allclose(probs, model.probabilities(model(image)).detach(), atol=1e-5)


def test_evaluate_reports_ece_before_and_after_scaling_and_draws_its_pictures(calibrated_run, tmp_path):
    out = tmp_path / "eval"
    report = evaluate(compose_app("evaluate", out, f"ckpt={calibrated_run['ckpt']}", "data=folder",
                                  f"data.root={calibrated_run['data']}", "gallery_size=2"))
    assert report["temperature"] == pytest.approx(calibrated_run["final"]["temperature"])
    assert 0 <= report["all/ece"] <= 1 and 0 <= report["all/ece_raw"] <= 1
    assert report["coverage"][0]["coverage"] == 1.0 and report["coverage"][0]["accuracy"] == report["all/acc"]
    for name in ("gallery.png", "reliability.png", "coverage.png", "coverage.csv"):
        assert (out / name).stat().st_size > 100


def test_a_run_without_validation_split_stores_no_temperature(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    train(compose_fast_cfg(tmp_path, "data=folder", f"data.root={data}", output_dir=tmp_path / "run"))
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]
    assert final["temperature"] is None and "test/ece" in final and "test/ece_raw" not in final
    assert load_classifier(tmp_path / "run" / "checkpoints" / "model.ckpt").temperature is None


# -- Grad-CAM -----------------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("pytorch_grad_cam") is None,
                    reason="grad-cam not installed (pip install 'garbage-lit[insight]')")
def test_gradcam_overlays_the_crop_the_model_sees(calibrated_run):
    from garbage_lit.insight.gradcam import gradcam_overlays, last_spatial_layer
    from garbage_lit.models.loading import preprocessing_of

    model = load_classifier(calibrated_run["ckpt"])
    assert last_spatial_layer(model.backbone, 224) is model.backbone.layer4  # resnet18: the block before pooling
    assert last_spatial_layer(model.backbone, 32) is model.backbone.layer3  # at 32 px layer4's map is 1 x 1
    lite = create_backbone("efficientnet_lite0", "none").module  # one ReLU6 module serves every block, from the stem on
    assert last_spatial_layer(lite, 224) is lite._bn1  # the head's conv + BN, 7 x 7: not the shared activation
    photos = sorted(calibrated_run["data"].rglob("*.jpg"))[:3]
    overlays = gradcam_overlays(model, photos, [0, 1, 2], preprocessing_of(model))
    assert [o.shape for o in overlays] == [(32, 32, 3)] * 3
    assert all(0 <= o.min() and o.max() <= 1 for o in overlays)
