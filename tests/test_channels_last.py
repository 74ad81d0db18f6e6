"""Channels-last (on by default) gives a conv backbone the default format's predictions and gradients."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from garbage_lit.models import GarbageClassifier
from garbage_lit.records.folder import PREDICTIONS_FILE
from garbage_lit.train import train


def _predictions(run_dir: Path) -> list[tuple[str, str, float]]:
    with (run_dir / PREDICTIONS_FILE).open(newline="", encoding="utf-8") as handle:
        return [(row["file"], row["predicted"], float(row["probability"])) for row in csv.DictReader(handle)]


def _first_conv_weight(ckpt: Path) -> torch.Tensor:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return next(v for k, v in state.items() if k.startswith("backbone.") and v.dim() == 4)


# resnet18: plain convolutions; efficientnet_lite0 with its ImageNet weights (random ones predict one constant
# class at 32 px): depthwise convolutions.
@pytest.mark.parametrize(("model", "weights"), [("resnet18", "none"), ("efficientnet_lite0", "imagenet")])
def test_a_channels_last_run_predicts_the_test_images_like_the_default_format(make_cfg, folder_dataset, tmp_path,
                                                                               model, weights):
    results = {}
    for name, overrides in {"channels_last": [], "default_format": ["callbacks.channels_last=null"]}.items():
        # The backbone runs on every image (no feature cache) in this format, in training and in the final test.
        cfg = make_cfg(f"model={model}", f"model.weights={weights}", "cache.features=false", "epochs=2",
                       "data=folder", f"data.root={folder_dataset}", *overrides, output_dir=tmp_path / name)
        results[name] = train(cfg)

    fast, default = (_first_conv_weight(tmp_path / name / results[name]["checkpoint"])  # relative to the run
                     for name in ("channels_last", "default_format"))
    assert fast.is_contiguous(memory_format=torch.channels_last) and not fast.is_contiguous()
    assert default.is_contiguous() and torch.equal(fast, default)  # the frozen backbone's weights, untouched

    fast, default = _predictions(tmp_path / "channels_last"), _predictions(tmp_path / "default_format")
    assert len(fast) == len(default) == 6
    assert len({probability for _, _, probability in default}) > 1  # the images get different outputs
    assert [(file, predicted) for file, predicted, _ in fast] == [(file, predicted) for file, predicted, _ in default]
    for (*_, probability), (*_, reference) in zip(fast, default):
        assert probability == pytest.approx(reference, abs=2e-6)  # the CSV's 6 decimals


def test_a_finetuning_step_in_channels_last_follows_the_default_formats_gradient():
    torch.manual_seed(0)
    model = GarbageClassifier("efficientnet_lite0", 3, ["a", "b", "c"], weights="imagenet", freeze_backbone=False,
                              preprocessing={"image_size": 64, "resize_size": 72, "mean": [0.485, 0.456, 0.406],
                                             "std": [0.229, 0.224, 0.225]}).train()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    images, labels = torch.randn(8, 3, 64, 64), torch.arange(8) % 3
    losses = []
    for net in (model, fast):
        torch.manual_seed(1)  # the same dropout masks
        loss = F.cross_entropy(net(images), labels)
        loss.backward()
        losses.append(loss.item())

    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    grads = [(p.grad, q.grad) for p, q in zip(model.parameters(), fast.parameters()) if p.grad is not None]
    assert len(grads) == len(list(model.parameters()))
    # oneDNN sums a channels-last weight gradient in another order: measured up to 0.9% of a parameter's gradient
    # norm with 2 threads, 2% with 1 (other kernels), every gradient pointing the same way (cosine > 0.9998).
    measured = [(p, q) for p, q in grads if p.norm() > 1e-3]
    assert max(float((q - p).norm() / p.norm()) for p, q in measured) < 5e-2
    assert min(float(F.cosine_similarity(p.flatten(), q.flatten(), dim=0)) for p, q in measured) > 0.999
