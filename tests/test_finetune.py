"""experiment=finetune: composes, warms up with a frozen backbone in eval mode, then unfreezes and trains it."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from garbage_lit.checkpoints import load_classifier
from garbage_lit.data.transforms import build_transforms
from garbage_lit.models.schedules import warmup_cosine_factor
from garbage_lit.train import train

from helpers import TEST_ACC


class BackboneStateProbe(pl.Callback):
    """Records, per epoch, whether the backbone trains (mode, trainable parameters) and each param group's lr."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, tuple[bool, bool, list[float]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        backbone = pl_module.backbone
        self.by_epoch[trainer.current_epoch] = (
            backbone.training, any(p.requires_grad for p in backbone.parameters()),
            [round(group["lr"], 8) for group in trainer.optimizers[0].param_groups])


def test_finetune_preset_composes_with_its_recipe(make_cfg):
    cfg = make_cfg("experiment=finetune")
    assert cfg.data.augment == "strong"
    assert cfg.model.label_smoothing == 0.1
    assert cfg.optim._target_ == "torch.optim.AdamW"
    assert cfg.scheduler._target_.endswith("warmup_cosine")
    assert cfg.callbacks.backbone_finetuning.unfreeze_backbone_at_epoch == 1
    assert cfg.callbacks.backbone_finetuning._target_.endswith("LinearProbeThenFinetune")
    # The paper's defaults are untouched without the preset.
    plain = make_cfg()
    assert plain.data.augment == "paper" and "backbone_finetuning" not in plain.callbacks


@pytest.mark.slow
def test_finetune_warms_up_frozen_then_unfreezes_backbone(make_cfg, folder_dataset, tmp_path, monkeypatch):
    out = tmp_path / "ft"
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "experiment=finetune", "epochs=2", output_dir=out)
    probe = BackboneStateProbe()
    original = train.__globals__["_instantiate_callbacks"]
    frozen_weight = {}

    class Snapshot(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            frozen_weight["start"] = pl_module.backbone.conv1.weight.detach().clone()

        def on_train_epoch_end(self, trainer, pl_module):
            frozen_weight[trainer.current_epoch] = pl_module.backbone.conv1.weight.detach().clone()

    monkeypatch.setitem(train.__globals__, "_instantiate_callbacks",
                        lambda *a, **k: [*original(*a, **k), probe, Snapshot()])
    result = train(cfg)

    # Epoch 0: linear probe (frozen backbone in eval mode, one param group, head lr warming up to half);
    # epoch 1: fine-tuning (backbone trainable, in train mode, its own group at 0.1 x the head's full lr).
    assert probe.by_epoch[0] == (False, False, [0.0005])
    assert probe.by_epoch[1] == (True, True, [0.001, 0.0001])
    assert torch.equal(frozen_weight["start"], frozen_weight[0])
    assert not torch.equal(frozen_weight[0], frozen_weight[1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0.0 <= result[TEST_ACC] <= 1.0
    # The fine-tuned checkpoint (with the callback's state) loads for inference like any other.
    loaded = load_classifier(out / "checkpoints" / "last.ckpt")
    assert not loaded.training and torch.equal(loaded.backbone.conv1.weight, frozen_weight[1])


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
