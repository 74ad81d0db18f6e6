"""Feature cache: same training as through the frozen network, K augmented views, content keys."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from garbage_lit.callbacks.finetuning import LinearProbeThenFinetune
from garbage_lit.data.images import load_rgb
from garbage_lit.data.transforms import build_transforms
from garbage_lit.features.cache import cached_features
from garbage_lit.features.datamodule import FeatureDataModule, feature_cache_decision
from garbage_lit.features.dataset import FeatureDataset, ViewSampler
from garbage_lit.models import GarbageClassifier
from garbage_lit.models.loading import load_classifier
from garbage_lit.run.components import data_module
from garbage_lit.train import train

from helpers import TEST_ACC


def _entries(cache: Path, kind: str) -> list[Path]:
    return sorted(p for p in (cache / kind).iterdir() if p.is_dir()) if (cache / kind).is_dir() else []


def test_head_trained_from_cache_matches_head_trained_through_frozen_backbone(make_cfg, folder_dataset, tmp_path):
    common = ("data=folder", f"data.root={folder_dataset}", "data.rotation_degrees=0", "epochs=1")
    train(make_cfg(*common, "cache.features=false", output_dir=tmp_path / "plain"))
    cfg = make_cfg(*common, "cache.features=true", output_dir=tmp_path / "cached")
    train(cfg)

    entries = _entries(Path(cfg.cache.dir), "features")
    assert len(entries) == 2  # train and test split, one view each
    assert sorted(np.load(e / "features.npy").shape for e in entries) == [(1, 6, 512), (1, 24, 512)]

    plain = torch.load(tmp_path / "plain" / "checkpoints" / "model.ckpt", weights_only=True)["state_dict"]
    cached = torch.load(tmp_path / "cached" / "checkpoints" / "model.ckpt", weights_only=True)["state_dict"]
    assert not torch.equal(plain["head.weight"], GarbageClassifier("resnet18", 3, weights="none").head.weight)
    torch.testing.assert_close(cached["head.weight"], plain["head.weight"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cached["head.bias"], plain["head.bias"], atol=1e-5, rtol=1e-4)

    m_plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    m_cached = json.loads((tmp_path / "cached" / "metrics.json").read_text())
    assert m_cached["status"] == "completed"
    assert m_cached["epochs"][0]["train/loss"] == pytest.approx(m_plain["epochs"][0]["train/loss"], rel=1e-4)
    assert m_cached["final"][TEST_ACC] == m_plain["final"][TEST_ACC]
    assert m_cached["final"]["confusion_matrix"] == m_plain["final"]["confusion_matrix"]


def _predicts_its_own_test_result_on_images(ckpt: Path, run: Path, data: Path, result: dict) -> None:
    """Fed the test images, the checkpoint loaded as evaluate/predict load it reproduces the run's test result."""
    model = load_classifier(ckpt)
    pre = model.hparams.preprocessing
    transform = build_transforms(False, pre["image_size"], pre["resize_size"], 0, pre["mean"], pre["std"])
    with (run / "split_manifest.csv").open() as handle:
        test_rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    batch = torch.stack([transform(load_rgb(data / row["file"])) for row in test_rows])
    labels = torch.tensor([int(row["label"]) for row in test_rows])
    with torch.no_grad():
        predicted = model(batch).argmax(1)
    confusion = torch.zeros(3, 3, dtype=torch.int64)
    confusion.index_put_((labels, predicted), torch.ones(len(labels), dtype=torch.int64), accumulate=True)
    assert confusion.tolist() == result["confusion_matrix"]
    assert (predicted == labels).float().mean().item() == pytest.approx(result[TEST_ACC])


def test_the_model_of_a_cached_run_is_whole_and_predicts_on_images(make_cfg, folder_dataset, tmp_path):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "cache.features=true",
                   "cache.feature_views=2", output_dir=tmp_path / "cached")
    result = train(cfg)
    assert result["checkpoint"] == "checkpoints/model.ckpt"  # relative to the run folder
    ckpt = tmp_path / "cached" / result["checkpoint"]
    checkpoint = torch.load(ckpt, weights_only=True)
    assert any(k.startswith("backbone.") for k in checkpoint["state_dict"])
    # The saved model (backbone + head trained on features) reproduces the run's test result on images.
    _predicts_its_own_test_result_on_images(ckpt, tmp_path / "cached", folder_dataset, result)
    # The training checkpoints hold the head alone, and say where the model is.
    head_only = torch.load(tmp_path / "cached" / "checkpoints" / "last.ckpt", weights_only=True)
    assert sorted(head_only["state_dict"]) == ["head.bias", "head.weight"]
    with pytest.raises(ValueError, match=r"holds only the head.*checkpoints/model\.ckpt"):
        load_classifier(tmp_path / "cached" / "checkpoints" / "last.ckpt")


def test_feature_cache_stores_k_augmented_views_and_each_epoch_draws_one(make_cfg, folder_dataset, tmp_path):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "data.rotation_degrees=30",
                   "cache.features=true", "cache.feature_views=3", output_dir=tmp_path / "run")
    from hydra.utils import instantiate

    def features_of(cfg):
        datamodule = data_module(cfg)
        datamodule.setup("fit")
        return FeatureDataModule(datamodule, model.backbone, "resnet18", cfg.cache.feature_views, cfg.cache.dir)

    model = instantiate(cfg.model, _convert_="all", num_classes=3)
    datamodule = features_of(cfg)
    train_features = datamodule.train_dataloader().dataset
    test_features = datamodule.test_dataloader().dataset
    assert (train_features.views, train_features.num_images) == (3, 24)
    assert (test_features.views, test_features.num_images) == (1, 6)  # eval: one deterministic view
    views = train_features.features
    assert not torch.allclose(views[0], views[1]) and not torch.allclose(views[1], views[2])

    sampler = datamodule.train_dataloader().sampler.sampler  # batched by a BatchSampler
    assert isinstance(sampler, ViewSampler)
    epochs = []
    for epoch in range(4):  # Lightning sets each epoch before it starts
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    for epoch in epochs:
        assert sorted(i % 24 for i in epoch) == list(range(24))  # every image once per epoch
    drawn = {i // 24 for epoch in epochs for i in epoch}
    assert drawn == {0, 1, 2}
    assert epochs[0] != epochs[1]
    torch.manual_seed(7)
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]  # a function of (seed, epoch), not of the process's generator: resumable

    # Eval features are the deterministic (unrotated) view: the same as a rotation-free cache.
    again = make_cfg("data=folder", f"data.root={folder_dataset}", "data.rotation_degrees=0",
                     "cache.features=true", output_dir=tmp_path / "run2")
    assert features_of(again).test_dataloader().dataset.path == test_features.path


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
    assert feature_cache_decision(False, frozen) == (False, "cache.features=false")
    assert feature_cache_decision(True, frozen)[0] and feature_cache_decision("auto", frozen)[0]
    use, reason = feature_cache_decision("auto", trainable)
    assert not use and "model.freeze_backbone=false" in reason
    use, reason = feature_cache_decision("auto", frozen, finetuning)
    assert not use and "LinearProbeThenFinetune" in reason
    with pytest.raises(ValueError, match=r"cache.features=true cannot be used here: .*model\.freeze_backbone"):
        feature_cache_decision(True, trainable)


def test_finetune_preset_refuses_a_feature_cache_that_would_keep_its_backbone_frozen(make_cfg, folder_dataset):
    cfg = make_cfg("experiment=finetune", "epochs=2", "data=folder", f"data.root={folder_dataset}",
                   "cache.features=true")
    with pytest.raises(ValueError, match=r"cache.features=true cannot be used here: the LinearProbeThenFinetune "
                                         r"callback \(callbacks\.backbone_finetuning"):
        train(cfg)


@pytest.mark.parametrize(("overrides", "expected"), [
    ((), "feature cache on (cache.features=auto: the backbone stays frozen for the whole run)"),
    (("model.freeze_backbone=false",), "feature cache off (cache.features=auto is off: model.freeze_backbone"),
    (("experiment=finetune", "epochs=2"), "feature cache off (cache.features=auto is off: the LinearProbeThen"),
])
def test_auto_caches_features_exactly_when_the_backbone_stays_frozen(make_cfg, folder_dataset, tmp_path, caplog,
                                                                      overrides, expected):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", *overrides)
    assert cfg.cache.features == "auto"  # the default
    caplog.set_level(logging.INFO, logger="garbage_lit.features.datamodule")
    train(cfg)
    assert [r.getMessage() for r in caplog.records if "feature cache o" in r.getMessage()][0].startswith(expected)
    # On: features of the train and test split were cached (and trained on); off: nothing was.
    assert len(_entries(Path(cfg.cache.dir), "features")) == (2 if "cache on" in expected else 0)


def test_lean_batches_are_the_per_image_loaders_batches(tmp_path):
    features = np.random.default_rng(0).normal(size=(3, 10, 4)).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    labels = [i % 3 for i in range(10)]
    dataset = FeatureDataset(tmp_path / "features.npy", labels)

    flat = torch.from_numpy(features).reshape(30, 4)
    per_image = TensorDataset(flat, torch.tensor(labels * 3))  # item view * N + image, as the sampler numbers them
    lean = list(dataset.loader(batch_size=4, shuffle=True, seed=5))
    reference = list(DataLoader(per_image, batch_size=4, sampler=ViewSampler(dataset, seed=5)))  # image by image
    assert [len(y) for _, y in lean] == [4, 4, 2]
    for (inputs, targets), (x, y) in zip(lean, reference, strict=True):
        assert torch.equal(inputs, x) and torch.equal(targets, y)
    evaluation = list(dataset.loader(batch_size=4, shuffle=False))
    assert torch.equal(torch.cat([x for x, _ in evaluation]), flat[:10])  # images in order, view 0


def test_head_only_checkpoints_resume_and_the_run_ends_with_a_whole_model(make_cfg, folder_dataset, tmp_path):
    common = ("data=folder", f"data.root={folder_dataset}", "epochs=2", "optim=adam", "lr=0.01")
    train(make_cfg(*common, output_dir=tmp_path / "whole"))

    run = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="interrupted"):
        train(make_cfg(*common, "+callbacks.fail._target_=helpers.callbacks.FailAtEpoch", output_dir=run))
    head_only = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert head_only["epoch"] == 0 and sorted(head_only["state_dict"]) == ["head.bias", "head.weight"]
    assert len(head_only["FeatureDataModule"]["backbone_fingerprint"]) == 64
    assert not (run / "checkpoints" / "model.ckpt").exists()
    with pytest.raises(ValueError, match="holds only the head") as refused:
        load_classifier(run / "checkpoints" / "last.ckpt")
    assert f"resume the run (add ckpt_path={run} to its training command)" in str(refused.value)
    assert "model.weights" not in str(refused.value)  # loading for use sets no weights: nothing to blame

    resumed = train(make_cfg(*common, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", output_dir=tmp_path / "x"))
    rows = [json.loads((folder / "metrics.json").read_text())["epochs"] for folder in (tmp_path / "whole", run)]
    assert [r["epoch"] for r in rows[1]] == [0, 1] and resumed["epoch"] == 1
    assert {k: v for k, v in rows[1][0].items() if k != "seconds"} == {k: v for k, v in rows[0][0].items()
                                                                      if k != "seconds"}
    _predicts_its_own_test_result_on_images(run / resumed["checkpoint"], run, folder_dataset, resumed)


def test_a_head_trained_on_other_backbone_weights_is_not_resumed(make_cfg, folder_dataset, tmp_path):
    common = ("data=folder", f"data.root={folder_dataset}", "epochs=2")
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="interrupted"):
        train(make_cfg(*common, "+callbacks.fail._target_=helpers.callbacks.FailAtEpoch", output_dir=run))
    torch.manual_seed(1)
    weights = tmp_path / "other.pth"
    torch.save(GarbageClassifier("resnet18", 3, weights="none").backbone.state_dict(), weights)
    with pytest.raises(ValueError, match=r"trained on cached features of the resnet18 backbone with weights .* "
                                         r"resume with the model config the run was trained with"):
        train(make_cfg(*common, f"model.weights={weights}", f"ckpt_path={run}", output_dir=tmp_path / "x"))


def test_a_batch_transform_trains_on_images_with_soft_labels_and_is_never_cached(make_cfg, folder_dataset, tmp_path,
                                                                                 caplog):
    mixup = "data/batch_transform=mixup_cutmix"
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", mixup, "epochs=2", output_dir=tmp_path / "run")
    caplog.set_level(logging.INFO, logger="garbage_lit.features.datamodule")
    result = train(cfg)
    assert "feature cache off (cache.features=auto is off: data.batch_transform mixes" in caplog.text
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert all(0.0 <= row["train/acc"] <= 1.0 and row["train/loss"] > 0 for row in rows)  # metrics on hard labels
    assert 0.0 <= result[TEST_ACC] <= 1.0
    with pytest.raises(ValueError, match=r"cache.features=true cannot be used here: data\.batch_transform mixes"):
        train(make_cfg("data=folder", f"data.root={folder_dataset}", mixup, "cache.features=true",
                       output_dir=tmp_path / "cached"))
