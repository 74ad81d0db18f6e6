"""experiment=finetune: composes, warms up with a frozen backbone in eval mode, then unfreezes and trains it."""

from __future__ import annotations

import json

import pytest
import torch

from garbage_lit.data.transforms import build_transforms
from garbage_lit.evaluate import evaluate
from garbage_lit.models.loading import load_classifier
from garbage_lit.train import train
from garbage_lit.training.schedules import warmup_cosine_factor

from helpers import TEST_ACC
from helpers.callbacks import BackboneStateProbe
from helpers.config import compose_app


def test_finetune_preset_composes_with_its_recipe(make_cfg):
    cfg = make_cfg("experiment=finetune")
    assert cfg.data.augment == "strong"
    assert cfg.model.label_smoothing == 0.1
    assert cfg.optim.algorithm == "torch.optim.AdamW"
    assert cfg.scheduler._target_.endswith("warmup_cosine")
    assert cfg.callbacks.backbone_finetuning.unfreeze_backbone_at_epoch == 1
    assert cfg.callbacks.backbone_finetuning._target_.endswith("LinearProbeThenFinetune")
    # The paper's defaults are untouched without the preset.
    plain = make_cfg()
    assert plain.data.augment == "paper" and "backbone_finetuning" not in plain.callbacks


@pytest.mark.slow
def test_finetune_warms_up_frozen_then_unfreezes_backbone(make_cfg, folder_dataset, tmp_path):
    out = tmp_path / "ft"
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "experiment=finetune", "epochs=2",
                   "+callbacks.probe._target_=helpers.callbacks.BackboneStateProbe", output_dir=out)
    result = train(cfg)
    probe = BackboneStateProbe.latest
    frozen_weight, last_weight = probe.first_weight, probe.last_weight

    # Epoch 0: linear probe (frozen backbone in eval mode, the head's groups (its bias without weight decay), lr warming
    # up to half); epoch 1: fine-tuning (backbone trainable, in train mode, its groups at 0.1 x the head's full lr).
    assert probe.by_epoch[0] == (False, False, [0.0005, 0.0005])
    assert probe.by_epoch[1] == (True, True, [0.001, 0.001, 0.0001, 0.0001])
    assert torch.equal(frozen_weight["start"], frozen_weight[0]) and torch.equal(last_weight["start"], last_weight[0])
    # The preset's model.frozen_stages=3: the stem stays as pretrained, the last stage trains.
    assert torch.equal(frozen_weight[0], frozen_weight[1]) and not torch.equal(last_weight[0], last_weight[1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0.0 <= result[TEST_ACC] <= 1.0
    # The run's model loads for inference like any other.
    loaded = load_classifier(out / "checkpoints" / "model.ckpt")
    assert not loaded.training and torch.equal(list(loaded.backbone.parameters())[-1], last_weight[1])


def test_warmup_cosine_factor_shape():
    factors = [warmup_cosine_factor(e, warmup_epochs=1, max_epochs=5, min_factor=0.0) for e in range(5)]
    assert factors[0] == pytest.approx(0.5) and factors[1] == pytest.approx(1.0)
    assert factors == sorted(factors[:2]) + sorted(factors[1:], reverse=True)[1:]
    assert factors[-1] == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(torch.pi * 3 / 4)).item()))


def test_strong_augmentation_only_changes_training_transforms():
    strong_train = build_transforms(True, 32, 36, augment="strong")
    names = [type(t).__name__ for t in strong_train.transforms]
    assert {"RandomResizedCrop", "RandomHorizontalFlip", "TrivialAugmentWide"} <= set(names)
    paper_eval = [type(t).__name__ for t in build_transforms(False, 32, 36).transforms]
    assert [type(t).__name__ for t in build_transforms(False, 32, 36, augment="strong").transforms] == paper_eval
    with pytest.raises(ValueError, match="data.augment='heavy'"):
        build_transforms(True, 32, 36, augment="heavy")


@pytest.mark.slow
def test_finetune_best_trains_with_every_piece_and_reports_what_evaluate_gives(make_cfg, folder_dataset, tmp_path):
    out = tmp_path / "best"
    final = train(make_cfg("experiment=finetune_best", "data=folder", f"data.root={folder_dataset}", "epochs=2",
                           "data.image_size=32", "data.resize_size=36", "data.eval_image_size=40", output_dir=out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["trainer"]["precision"] == "bf16-mixed" and final["precision"] == "32-true"
    assert metrics["feature_cache"] is False and all(TEST_ACC not in row for row in metrics["epochs"])  # read once
    model = load_classifier(out / final["checkpoint"])
    assert model.hparams.flip_tta and model.hparams.preprocessing["image_size"] == 40
    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={out / final['checkpoint']}", "data=folder",
                                  f"data.root={folder_dataset}", "split=test"))
    assert report[TEST_ACC] == pytest.approx(final[TEST_ACC], abs=1e-6)
