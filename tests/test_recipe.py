"""The fine-tuning recipe's training pieces: EMA of the weights, MixUp/CutMix, class weights, the final test's
precision. Tiny data, real values."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from garbage_lit.data.images import load_rgb
from garbage_lit.evaluate import evaluate
from garbage_lit.export import export
from garbage_lit.models import GarbageClassifier
from garbage_lit.models.classifier import class_weights
from garbage_lit.models.loading import eval_transform, load_classifier
from garbage_lit.predict import predict
from garbage_lit.run.components import data_module
from garbage_lit.train import train

from helpers import TEST_ACC
from helpers.callbacks import ManualEMA
from helpers.config import compose_app
from helpers.data import make_folder_dataset, require_shared, write_image


# -- EMA of the weights ------------------------------------------------------------------------------
@pytest.mark.parametrize("frozen", [False, True], ids=["finetuned", "cached-features"])
def test_the_ema_of_the_weights_is_the_model_kept_tested_saved_and_exported(make_cfg, folder_dataset, tmp_path,
                                                                            frozen):
    run = tmp_path / "run"
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.3", "epochs=3",
                   f"model.freeze_backbone={str(frozen).lower()}", "callbacks/weight_averaging=ema",
                   "callbacks.weight_averaging.half_life_epochs=0.5",
                   "+callbacks.probe._target_=helpers.callbacks.ManualEMA", output_dir=run)
    final = train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["feature_cache"] is frozen
    average, trained = ManualEMA.latest.by_epoch[final["epoch"]]  # the epoch val/acc chose (EMA weights validated)

    saved = torch.load(run / final["checkpoint"], weights_only=True)["state_dict"]
    for key, value in average.items():
        torch.testing.assert_close(saved[key], value, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(saved["head.weight"], trained["head.weight"])  # not the weights as trained

    # The run's own test is of those weights: evaluate on the checkpoint gives its numbers.
    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={run / final['checkpoint']}", "data=folder",
                                  f"data.root={folder_dataset}", "data.val_ratio=0.3", "split=test"))
    assert report[TEST_ACC] == pytest.approx(final[TEST_ACC], abs=1e-6)
    assert report["confusion_matrix"] == final["confusion_matrix"]
    exported = torch.jit.load(str(export(run / final["checkpoint"], "torchscript", tmp_path / "m.pt")))
    exported_head = exported.state_dict()["networks.0.1.weight"]  # the one network's (backbone, head)
    torch.testing.assert_close(exported_head, average["head.weight"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(load_classifier(run / final["checkpoint"]).head.bias, average["head.bias"])


@pytest.mark.slow
def test_after_the_unfreeze_the_average_follows_the_trained_weights_on_real_photos(make_cfg, tmp_path, caplog):
    """TrashNet photos (15 a class), efficientnet_lite0 with ImageNet weights, linear probe then unfrozen. A run with
    EMA trains exactly the weights of the same run without it (same seed, same draws), so the plain run's val/acc
    is the trained weights'. The average restarts from the weights at the unfreeze and, from the epoch after it,
    scores within 2 of the 24 validation images of them."""
    data = tmp_path / "trashnet15"
    for class_dir in sorted(p for p in require_shared("trashnet").iterdir() if p.is_dir()):
        (data / class_dir.name).mkdir(parents=True)
        for photo in sorted(class_dir.glob("*.jpg"))[:15]:
            (data / class_dir.name / photo.name).symlink_to(photo)
    common = ("data=folder", f"data.root={data}", "experiment=finetune", "model=efficientnet_lite0",
              "model.weights=imagenet", "data.image_size=96", "data.resize_size=110", "epochs=4", "batch_size=8",
              "data.val_ratio=0.3", "test=false")
    runs = {name: tmp_path / name for name in ("plain", "ema")}
    train(make_cfg(*common, output_dir=runs["plain"]))
    with caplog.at_level(logging.INFO, logger="garbage_lit.callbacks.ema"):
        train(make_cfg(*common, "callbacks/weight_averaging=ema", output_dir=runs["ema"]))
    plain, ema = (json.loads((run / "metrics.json").read_text()) for run in runs.values())
    assert plain["data"]["split_sizes"]["val"] == 24
    trained = [row["val/acc"] for row in plain["epochs"]]
    average = [row["val/acc"] for row in ema["epochs"]]
    assert [row["train/loss"] for row in ema["epochs"]] == [row["train/loss"] for row in plain["epochs"]]
    assert "EMA of the weights restarted at step 7" in caplog.text
    for epoch in (2, 3):
        assert abs(average[epoch] - trained[epoch]) <= 2 / 24 + 1e-6, (average, trained)


def test_an_interrupted_ema_run_resumes_training_the_weights_not_their_average(make_cfg, folder_dataset, tmp_path):
    common = ("data=folder", f"data.root={folder_dataset}", "epochs=2", "model.freeze_backbone=false",
              "callbacks/weight_averaging=ema", "+callbacks.probe._target_=helpers.callbacks.ManualEMA")
    run = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="interrupted"):
        train(make_cfg(*common, "+callbacks.fail._target_=helpers.callbacks.FailAtEpoch", output_dir=run))
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0 and "current_model_state" in saved  # the average in state_dict, the weights beside

    final = train(make_cfg(*common, f"ckpt_path={run}", output_dir=tmp_path / "again"))
    start = ManualEMA.latest.start  # the model when the resumed run's training began
    for key, value in start.items():
        torch.testing.assert_close(value, saved["current_model_state"][key])
    assert not torch.allclose(start["head.weight"], saved["state_dict"]["head.weight"])
    assert final["epoch"] == 1 and (run / final["checkpoint"]).is_file()


def test_ema_half_life_must_be_positive():
    from garbage_lit.callbacks.ema import WeightEMA

    with pytest.raises(ValueError, match=r"half_life_epochs=0 must be above 0"):
        WeightEMA(half_life_epochs=0)


# -- training smaller than testing (FixRes) ---------------------------------------------------------------
def test_batchnorm_statistics_re_estimated_at_the_test_size_are_the_saved_model_s(make_cfg, folder_dataset, tmp_path):
    """Trained at 32 px, validated and tested at 48 px with callbacks/batchnorm=recalibrate: model.ckpt holds the
    statistics of the calibration images at 48 px (recomputed here by hand from the saved weights), the frozen stem
    keeps its own, and evaluate on model.ckpt gives the run's test accuracy."""
    run = tmp_path / "run"
    final = train(make_cfg("data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.3", "epochs=2",
                           "model.freeze_backbone=false", "model.frozen_stages=1", "data.eval_image_size=48",
                           "callbacks/batchnorm=recalibrate", "callbacks.batchnorm.images=12", output_dir=run))
    saved = torch.load(run / "checkpoints" / "model.ckpt", weights_only=True)["state_dict"]

    model = load_classifier(run / "checkpoints" / "model.ckpt")
    datamodule = data_module(make_cfg("data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.3",
                                      "data.eval_image_size=48", output_dir=tmp_path / "again"))
    datamodule.setup("fit")
    batches = [x for x, _ in datamodule.calibration_loader(12)]
    assert torch.cat(batches).shape == (12, 3, 48, 48)
    # BatchNorm's own estimate: every layer but the frozen stem's in train mode, a cumulative average over the batches.
    model.eval()
    stem = model.backbone.bn1
    for layer in model.backbone.modules():
        if isinstance(layer, torch.nn.BatchNorm2d) and layer is not stem:
            layer.reset_running_stats()
            layer.momentum = None
            layer.train()
    with torch.no_grad():
        for images in batches:
            model(images)
    for key, value in model.state_dict().items():
        if "running_" in key:
            torch.testing.assert_close(saved[key], value, rtol=1e-4, atol=1e-5, msg=key)
    pl.seed_everything(0)  # the run's seed: the random-init backbone it built first (the frozen stem's statistics)
    initial = instantiate(make_cfg().model, _convert_="all", num_classes=3).backbone.state_dict()
    assert torch.equal(saved["backbone.bn1.running_mean"], initial["bn1.running_mean"])

    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={run / 'checkpoints' / 'model.ckpt'}",
                                  "data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.3", "split=test"))
    assert report["inference"]["image_size"] == 48 and report[TEST_ACC] == pytest.approx(final[TEST_ACC], abs=1e-6)


# -- precision ---------------------------------------------------------------------------------------
def test_a_bf16_trained_run_reports_the_float32_test_that_evaluate_and_predict_give(make_cfg, folder_dataset,
                                                                                    tmp_path):
    run = tmp_path / "run"
    final = train(make_cfg("data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.3", "epochs=2",
                           "lr=0.0001", "model.freeze_backbone=false", "++trainer.precision=bf16-mixed",
                           output_dir=run))
    assert final["precision"] == "32-true"
    ckpt = run / final["checkpoint"]
    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={ckpt}", "data=folder",
                                  f"data.root={folder_dataset}", "data.val_ratio=0.3", "split=test"))
    assert report[TEST_ACC] == pytest.approx(final[TEST_ACC], abs=1e-6)

    # Validation too ran in float32: the kept epoch's val/loss is the checkpoint's float32 loss on the val images.
    with (run / "split_manifest.csv").open() as handle:
        val = [row for row in csv.DictReader(handle) if row["split"] == "val"]
    model = load_classifier(ckpt)
    images = torch.stack([eval_transform(model)(load_rgb(folder_dataset / row["file"])) for row in val])
    labels = torch.tensor([model.class_names.index(row["class_name"]) for row in val])
    with torch.no_grad():
        loss = model.criterion(model(images), labels).item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_in_bf16 = model.criterion(model(images), labels).item()
    rows = json.loads((run / "metrics.json").read_text())["epochs"]
    kept = next(row for row in rows if row["epoch"] == final["epoch"])
    assert kept["val/loss"] == pytest.approx(loss, rel=1e-6)
    assert abs(loss_in_bf16 - loss) > 1e-4  # what a bf16 validation would have recorded instead

    # Image by image: the run's test probabilities are predict's.
    with (run / "test_predictions.csv").open() as handle:
        tested = {row["file"]: float(row["probability"]) for row in csv.DictReader(handle)}
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={ckpt}",
                               f"inputs=[{','.join(str(folder_dataset / f) for f in tested)}]", "num_workers=0"))
    predicted = {Path(row["file"]).relative_to(folder_dataset).as_posix(): row["top"][0]["probability"] for row in rows}
    assert predicted == pytest.approx(tested, abs=2e-6)


# -- MixUp / CutMix --------------------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["mixup", "cutmix", "mixup_cutmix"])
def test_batch_transform_presets_mix_a_batch_into_soft_labels(make_cfg, choice):
    torch.manual_seed(0)
    transform = instantiate(make_cfg(f"data/batch_transform={choice}").data.batch_transform)(num_classes=3)
    images, labels = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, soft = transform(images, labels)
    assert mixed.shape == images.shape and soft.shape == (6, 3)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(6))
    assert (soft.max(dim=1).values < 1).all()  # every image's label blended with another's


def test_soft_labels_train_with_label_smoothing_and_hard_label_metrics():
    torch.manual_seed(0)
    model = GarbageClassifier("resnet18", 3, weights="none", freeze_backbone=False, label_smoothing=0.1)
    model.trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    images = torch.rand(6, 3, 32, 32)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4], [0.2, 0.0, 0.8]]).repeat(2, 1)
    loss = model.training_step((images, soft), 0)

    log_probs = model(images).log_softmax(dim=1)
    smoothed = 0.9 * soft + 0.1 / 3  # label smoothing applied to the soft targets, as torch's loss does
    torch.testing.assert_close(loss, -(smoothed * log_probs).sum(dim=1).mean())
    hard = soft.argmax(dim=1)  # accuracy reads the most likely class of a mixed label
    expected = (log_probs.argmax(dim=1) == hard).float().mean()
    torch.testing.assert_close(model.train_metrics.metrics()["train/acc"].compute(), expected)



# -- class imbalance ---------------------------------------------------------------------------------------
def test_balanced_class_weights_make_each_class_count_alike():
    weights = class_weights("balanced", [10, 30, 20], 3)
    torch.testing.assert_close(weights, torch.tensor([2.0, 2 / 3, 1.0]))  # 60 images / (3 classes x its images)
    assert class_weights("none", [10, 30, 20], 3) is None
    with pytest.raises(ValueError, match=r"model.class_weighting='inverse' is not known; choose one of none, balanced"):
        class_weights("inverse", [10, 30, 20], 3)

    model = GarbageClassifier("resnet18", 3, weights="none", class_weighting="balanced", class_counts=[10, 30, 20])
    logits, targets = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    picked = weights[targets]
    expected = -(picked * logits.log_softmax(dim=1)[torch.arange(5), targets]).sum() / picked.sum()
    torch.testing.assert_close(model.criterion(logits, targets), expected)


def test_a_class_weighted_run_counts_its_training_split_and_its_model_loads(make_cfg, tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    for extra in range(6):  # glass: 16 images, 13 of them for training, against 8 of each other class
        write_image(data / "glass" / f"extra{extra}.jpg", (200, 40, 40), seed=900 + extra)
    run = tmp_path / "run"
    final = train(make_cfg("data=folder", f"data.root={data}", "model.class_weighting=balanced", output_dir=run))
    model = load_classifier(run / final["checkpoint"])
    with (run / "split_manifest.csv").open() as handle:
        training = [row["class_name"] for row in csv.DictReader(handle) if row["split"] == "train"]
    assert model.hparams.class_counts == [training.count(name) for name in model.class_names] == [13, 8, 8]
    torch.testing.assert_close(model.criterion.weight, torch.tensor([29 / 39, 29 / 24, 29 / 24]))
