"""The shared LightningModule: frozen vs fine-tuned backbones, optimizers, and what the config wires in."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from garbage_lit.features.datamodule import backbone_detached
from garbage_lit.models import GarbageClassifier
from garbage_lit.training.optimizers import OptimizerFactory


def _fit_one_epoch(model: GarbageClassifier) -> None:
    x = torch.randn(16, 3, 32, 32)
    y = torch.arange(16) % 3
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=loader)


def _model(freeze: bool) -> GarbageClassifier:
    return GarbageClassifier("resnet18", num_classes=3, weights="none", freeze_backbone=freeze,
                             optimizer=OptimizerFactory("torch.optim.SGD", lr=0.1))


def test_frozen_backbone_trains_only_the_head_and_keeps_batchnorm_statistics():
    model = _model(freeze=True)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.weight.clone()
    _fit_one_epoch(model)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key  # weights and running stats alike
    assert not torch.equal(model.head.weight, head_before)
    groups = model.configure_optimizers().param_groups  # the head's weight, and its bias without weight decay
    assert [(g["name"], g["params"]) for g in groups] == [("head", [model.head.weight]),
                                                          ("head/no_decay", [model.head.bias])]


def test_unfrozen_backbone_is_fine_tuned():
    model = _model(freeze=False)
    conv_before = model.backbone.conv1.weight.clone()
    bn_mean_before = model.backbone.bn1.running_mean.clone()
    _fit_one_epoch(model)
    assert not torch.equal(model.backbone.conv1.weight, conv_before)
    assert not torch.equal(model.backbone.bn1.running_mean, bn_mean_before)


def test_a_detached_backbone_lets_the_head_take_features_and_comes_back():
    model = _model(freeze=True).eval()
    images = torch.randn(2, 3, 32, 32)
    backbone = model.backbone
    with torch.no_grad():
        features, logits = model.backbone(images), model(images)
        with backbone_detached(model):
            torch.testing.assert_close(model(features), logits)
            assert not any(key.startswith("backbone.") for key in model.state_dict())
    assert model.backbone is backbone


def test_config_overrides_reach_optimizer_loader_and_scheduler(make_cfg, folder_dataset):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "optim=adam", "lr=0.01", "batch_size=8",
                   "scheduler=cosine", "epochs=4")
    assert cfg.data.batch_size == 8
    optimizer = instantiate(cfg.optim)([("head", torch.nn.Linear(2, 3), None)])
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.01
    scheduler = instantiate(cfg.scheduler)(optimizer=optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and scheduler.T_max == 4


def test_normalization_defaults_follow_the_backbone(make_cfg):
    assert list(make_cfg("model=efficientnet_lite0").data.mean) == [0.5, 0.5, 0.5]
    assert list(make_cfg("model=googlenet").data.std) == [0.229, 0.224, 0.225]
    assert list(make_cfg("model=resnet18", "data.mean=[0.1,0.2,0.3]").data.mean) == [0.1, 0.2, 0.3]
