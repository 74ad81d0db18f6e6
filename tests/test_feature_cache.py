"""Feature cache: same training as through the frozen network, K augmented views, content keys."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from garbage_lit.callbacks.finetuning import LinearProbeThenFinetune
from garbage_lit.data.feature_cache import FeatureDataset, ViewSampler, cached_features, feature_cache_decision
from garbage_lit.data.images import load_rgb
from garbage_lit.data.transforms import build_transforms
from garbage_lit.models import GarbageClassifier
from garbage_lit.train import train

from helpers import TEST_ACC


def _entries(cache: Path, kind: str) -> list[Path]:
    return sorted(p for p in (cache / kind).iterdir() if p.is_dir()) if (cache / kind).is_dir() else []


def test_head_trained_from_cache_matches_head_trained_through_frozen_backbone(make_cfg, folder_dataset, tmp_path):
    common = ("data=folder", f"data.root={folder_dataset}", "data.rotation_degrees=0", "epochs=1")
    train(make_cfg(*common, "data.feature_cache=false", output_dir=tmp_path / "plain"))
    cfg = make_cfg(*common, "data.feature_cache=true", output_dir=tmp_path / "cached")
    train(cfg)

    entries = _entries(Path(cfg.paths.cache_dir), "features")
    assert len(entries) == 2  # train and test split, one view each
    assert sorted(np.load(e / "features.npy").shape for e in entries) == [(1, 6, 512), (1, 24, 512)]

    plain = torch.load(tmp_path / "plain" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    cached = torch.load(tmp_path / "cached" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not torch.equal(plain["head.weight"], GarbageClassifier("resnet18", 3, weights="none").head.weight)
    torch.testing.assert_close(cached["head.weight"], plain["head.weight"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cached["head.bias"], plain["head.bias"], atol=1e-5, rtol=1e-4)

    m_plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    m_cached = json.loads((tmp_path / "cached" / "metrics.json").read_text())
    assert m_cached["status"] == "completed"
    assert m_cached["epochs"][0]["train/loss"] == pytest.approx(m_plain["epochs"][0]["train/loss"], rel=1e-4)
    assert m_cached["final"][TEST_ACC] == m_plain["final"][TEST_ACC]
    assert m_cached["final"]["confusion_matrix"] == m_plain["final"]["confusion_matrix"]


def test_checkpoint_of_cached_run_is_a_full_model_that_predicts_on_images(make_cfg, folder_dataset, tmp_path):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "data.feature_cache=true",
                   "data.feature_cache_views=2", output_dir=tmp_path / "cached")
    result = train(cfg)
    ckpt = tmp_path / "cached" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert any(k.startswith("backbone.") for k in state)

    model = GarbageClassifier.load_from_checkpoint(ckpt, weights_only=True).eval()
    pre = model.hparams.preprocessing
    transform = build_transforms(False, pre["image_size"], pre["resize_size"], 0, pre["mean"], pre["std"])
    with (tmp_path / "cached" / "split_manifest.csv").open() as handle:
        test_rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    batch = torch.stack([transform(load_rgb(folder_dataset / row["file"])) for row in test_rows])
    labels = torch.tensor([int(row["label"]) for row in test_rows])
    with torch.no_grad():
        predicted = model(batch).argmax(1)
    # Fed images, the saved model (backbone + head trained on features) reproduces the run's test result.
    confusion = torch.zeros(3, 3, dtype=torch.int64)
    confusion.index_put_((labels, predicted), torch.ones(len(labels), dtype=torch.int64), accumulate=True)
    assert confusion.tolist() == result["confusion_matrix"]
    assert (predicted == labels).float().mean().item() == pytest.approx(result[TEST_ACC])


def test_feature_cache_stores_k_augmented_views_and_each_epoch_draws_one(make_cfg, folder_dataset, tmp_path):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "data.rotation_degrees=30",
                   "data.feature_cache=true", "data.feature_cache_views=3", output_dir=tmp_path / "run")
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = instantiate(cfg.model, _convert_="all", num_classes=3)
    assert datamodule.decide_feature_cache(model.backbone, "resnet18")
    train_features = datamodule.train_dataloader().dataset
    test_features = datamodule.test_dataloader().dataset
    assert (train_features.views, train_features.num_images) == (3, 24)
    assert (test_features.views, test_features.num_images) == (1, 6)  # eval: one deterministic view
    views = train_features.features
    assert not torch.allclose(views[0], views[1]) and not torch.allclose(views[1], views[2])

    sampler = datamodule.train_dataloader().sampler.sampler  # batched by a BatchSampler
    assert isinstance(sampler, ViewSampler)
    torch.manual_seed(7)
    epochs = [list(sampler) for _ in range(4)]
    for epoch in epochs:
        assert sorted(i % 24 for i in epoch) == list(range(24))  # every image once per epoch
    drawn = {i // 24 for epoch in epochs for i in epoch}
    assert drawn == {0, 1, 2}
    assert epochs[0] != epochs[1]
    torch.manual_seed(7)
    assert list(sampler) == epochs[0]  # seeded through the global generator (seed_everything)

    # Eval features are the deterministic (unrotated) view: the same as a rotation-free cache.
    again = make_cfg("data=folder", f"data.root={folder_dataset}", "data.rotation_degrees=0",
                     "data.feature_cache=true", output_dir=tmp_path / "run2")
    datamodule2 = instantiate(again.data)
    datamodule2.setup("fit")
    assert datamodule2.decide_feature_cache(model.backbone, "resnet18")
    assert datamodule2.test_dataloader().dataset.path == test_features.path


def test_feature_cache_key_changes_with_every_input(tmp_path):
    images = TensorDataset(torch.rand(5, 3, 4, 4), torch.arange(5))
    ids = [f"sha{i}" for i in range(5)]
    pre = {"image_size": 4, "resize_size": 4, "mean": [0.5] * 3, "std": [0.5] * 3, "rotation_degrees": 0}
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 6))
    other_net = nn.Sequential(nn.Flatten(), nn.Linear(48, 6))

    def path(**change):
        args = {"backbone": net, "backbone_name": "tiny", "images": images, "image_ids": ids, "preprocessing": pre,
                "views": 1, "cache_dir": tmp_path} | change
        return cached_features(**args)

    base = path()
    features = np.load(base)
    assert features.shape == (1, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(features[0]), net(images.tensors[0]))
    assert path() == base  # same inputs: same entry, not refilled
    variants = [path(backbone=other_net), path(backbone_name="tiny2"), path(image_ids=ids[::-1]),
                path(image_ids=[*ids[:4], "changed"]), path(preprocessing=pre | {"resize_size": 5}),
                path(preprocessing=pre | {"mean": [0.4] * 3}), path(preprocessing=pre | {"rotation_degrees": 10}),
                path(views=2)]
    assert len({base, *variants}) == len(variants) + 1
    assert FeatureDataset(path(views=2), list(range(5))).views == 2


def test_feature_cache_decision_is_exact_or_refused():
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    trainable = torch.nn.Linear(2, 2)
    finetuning = [LinearProbeThenFinetune(unfreeze_backbone_at_epoch=1)]
    assert feature_cache_decision(False, frozen) == (False, "data.feature_cache=false")
    assert feature_cache_decision(True, frozen)[0] and feature_cache_decision("auto", frozen)[0]
    use, reason = feature_cache_decision("auto", trainable)
    assert not use and "model.freeze_backbone=false" in reason
    use, reason = feature_cache_decision("auto", frozen, finetuning)
    assert not use and "LinearProbeThenFinetune" in reason
    with pytest.raises(ValueError, match=r"data\.feature_cache=true cannot be used here: .*model\.freeze_backbone"):
        feature_cache_decision(True, trainable)


def test_finetune_preset_refuses_a_feature_cache_that_would_keep_its_backbone_frozen(make_cfg, folder_dataset):
    cfg = make_cfg("experiment=finetune", "epochs=2", "data=folder", f"data.root={folder_dataset}",
                   "data.feature_cache=true")
    with pytest.raises(ValueError, match=r"data\.feature_cache=true cannot be used here: the LinearProbeThenFinetune "
                                         r"callback \(callbacks\.backbone_finetuning"):
        train(cfg)
