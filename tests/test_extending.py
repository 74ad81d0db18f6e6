"""docs/layout.md's "how to add" rows, each followed once: the new piece lives only in the files its row names (here a
module of the test and a config folder of the test's own, added to Hydra's search path), and a run picks it up."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch import nn

from garbage_lit.config import CONFIG_DIR
from garbage_lit.data import layouts
from garbage_lit.models import zoos
from garbage_lit.records.folder import read_metrics
from garbage_lit.train import train

from helpers.data import make_folder_dataset


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """A module of our own (``extension``) and a config folder on Hydra's search path, as a user's project has."""
    module = ModuleType("extension")
    monkeypatch.setitem(sys.modules, "extension", module)
    conf = tmp_path / "conf"

    def add(path: str, text: str) -> None:
        (conf / path).parent.mkdir(parents=True, exist_ok=True)
        (conf / path).write_text(textwrap.dedent(text))

    def run(*overrides: str) -> Path:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=["debug=fast", f"hydra.searchpath=[file://{conf}]",
                                                          *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.cache.dir = str(tmp_path / "cache")
        train(cfg)
        return tmp_path / "run"

    return module, add, run


def test_a_tracker_is_a_module_and_its_config(extension, folder_dataset):
    from pytorch_lightning.loggers import Logger

    module, add, run = extension

    class Notebook(Logger):  # garbage_lit/loggers/notebook.py, as the row says
        seen: dict = {}

        name, version = "notebook", "0"
        experiment = None

        def log_hyperparams(self, params, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step=None):
            Notebook.seen.setdefault("metrics", set()).update(metrics)

        def plan_keys(self, keys):
            Notebook.seen["planned"] = list(keys)

        def log_png(self, tag, png, step):
            Notebook.seen.setdefault("pictures", []).append(tag)

        def log_summary(self, summary):
            Notebook.seen["summary"] = summary

    module.Notebook = Notebook
    add("logger/notebook.yaml", """\
        notebook:
          _target_: extension.Notebook
        """)
    run("data=folder", f"data.root={folder_dataset}", "logger=[tensorboard,notebook]")
    assert "test/per_class_acc/glass" in Notebook.seen["planned"] and "test/acc" in Notebook.seen["metrics"]
    assert {"test/gallery", "test/reliability", "test/coverage"} <= set(Notebook.seen["pictures"])
    summary = Notebook.seen["summary"]
    assert summary.hparams["model"] == "resnet18" and "test/confusion_matrix" in summary.pictures


def test_a_data_layout_is_a_reader_and_its_config(extension, tmp_path, monkeypatch):
    module, add, run = extension
    photos = make_folder_dataset(tmp_path / "photos")
    rows = [f"{path.relative_to(photos)},{path.parent.name}" for path in sorted(photos.glob("*/*.jpg"))]
    (photos / "labels.csv").write_text("\n".join(rows))

    def read_csv_listing(root: Path) -> layouts.ScanResult:  # in garbage_lit/data/layouts.py, as the row says
        lines = [line.split(",") for line in (root / "labels.csv").read_text().splitlines()]
        names = sorted({label for _, label in lines})
        return layouts.ScanResult(root, "csv", names, [layouts.Sample(root / path, names.index(label))
                                                       for path, label in lines])

    monkeypatch.setitem(layouts.LAYOUTS, "csv", read_csv_listing)
    add("data/csv.yaml", """\
        defaults:
          - folder
          - _self_
        layout: csv
        """)
    metrics = read_metrics(run("data=csv", f"data.root={photos}"))
    assert metrics["status"] == "completed" and metrics["data"]["class_names"] == ["glass", "metal", "paper"]


def test_a_batch_augmentation_is_its_config(extension, folder_dataset):
    module, add, run = extension
    calls = []

    def swap_pairs(num_classes: int):  # torchvision has no such one: garbage_lit/training/batch_transforms.py
        def transform(images, labels):
            calls.append(len(labels))
            soft = torch.nn.functional.one_hot(labels, num_classes).float()
            return images.flip(0), soft.flip(0)
        return transform

    module.swap_pairs = swap_pairs
    add("data/batch_transform/swap_pairs.yaml", """\
        _target_: extension.swap_pairs
        _partial_: true
        """)
    run("data=folder", f"data.root={folder_dataset}", "data/batch_transform=swap_pairs", "epochs=2",
        "data.batch_transform_off_epoch=1")
    assert calls and sum(calls) == 24  # every training batch of epoch 0, none after the off epoch


def test_a_metric_reaches_the_run_evaluate_and_the_report(monkeypatch, make_cfg, folder_dataset, tmp_path):
    from torchmetrics.classification import MulticlassSpecificity

    from garbage_lit import evaluate
    from garbage_lit.models import metrics
    from garbage_lit.report import sweep, tables
    from garbage_lit.report.__main__ import main as report_main

    def with_specificity(num_classes: int):  # into summary_metrics, garbage_lit/models/metrics.py
        collection = original(num_classes)
        collection.add_metrics({"specificity": MulticlassSpecificity(num_classes, validate_args=False)})
        return collection

    original = metrics.summary_metrics
    monkeypatch.setattr(metrics, "summary_metrics", with_specificity)
    monkeypatch.setattr(evaluate, "summary_metrics", with_specificity)  # the one function, as both import it
    monkeypatch.setattr(tables, "SUMMARY_METRICS", (*tables.SUMMARY_METRICS, "test/specificity"))
    monkeypatch.setattr(sweep, "SUMMARY_METRICS", tables.SUMMARY_METRICS)
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", output_dir=tmp_path / "sweep" / "0")
    train(cfg)
    recorded = read_metrics(tmp_path / "sweep" / "0")
    assert 0 <= recorded["final"]["test/specificity"] <= 1
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert "test/specificity" in evaluate.classification_report(probs, torch.tensor([0, 1, 1]), ["a", "b"],
                                                                split="test")
    assert report_main([str(tmp_path / "sweep")]) == 0
    assert "test/specificity" in (tmp_path / "sweep" / "summary.csv").read_text().splitlines()[0]


def test_a_recipe_piece_with_parameter_groups_is_the_factory_and_its_config(extension, folder_dataset):
    from garbage_lit.training.optimizers import OptimizerFactory

    module, add, run = extension
    built = []

    class SlowHeadBias(OptimizerFactory):  # a setting of the factory, garbage_lit/training/optimizers.py
        def __init__(self, bias_lr_scale: float = 1.0, **settings):
            super().__init__(**settings)
            self.bias_lr_scale = bias_lr_scale

        def param_groups(self, module, name, lr, stages=None):
            groups = super().param_groups(module, name, lr, stages)
            for group in groups:
                if group["name"].endswith("no_decay"):
                    group["lr"] *= self.bias_lr_scale
            built.append(groups)
            return groups

    module.SlowHeadBias = SlowHeadBias
    add("optim/slow_bias.yaml", """\
        defaults:
          - optimizer
          - _self_
        _target_: extension.SlowHeadBias
        algorithm: torch.optim.SGD
        bias_lr_scale: 0.1
        """)
    run("data=folder", f"data.root={folder_dataset}", "optim=slow_bias", "cache.features=false")
    (head, bias), = built
    assert head["name"] == "head" and bias["name"] == "head/no_decay" and bias["lr"] == pytest.approx(head["lr"] * 0.1)


def test_a_backbone_zoo_is_a_class_and_its_config(extension, folder_dataset, monkeypatch):
    module, add, run = extension

    class TinyZoo:  # in garbage_lit/models/zoos.py with its entry in ZOOS, as the row says
        name = "tiny"

        def names(self):
            return ["tinynet"]

        def knows(self, arch):
            return arch == "tinynet"

        def build(self, arch, pretrained_layout):
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU()),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

        def build_pretrained(self, arch):
            raise zoos.WeightsUnavailableError("tinynet has no ImageNet weights")

        def remove_head(self, model):
            return zoos.remove_last_linear(model)

        def stages(self, model):
            return zoos.child_stages(model)

        def preprocessing(self, arch):
            return zoos.Preprocessing(32, 36, "bilinear", (0.5,) * 3, (0.5,) * 3)

    monkeypatch.setitem(zoos.ZOOS, "tiny", TinyZoo())
    add("model/tinynet.yaml", """\
        defaults:
          - classifier
          - _self_
        zoo: tiny
        arch: tinynet
        weights: none
        """)
    run_dir = run("data=folder", f"data.root={folder_dataset}", "model=tinynet", "model.freeze_backbone=false",
                  "model.frozen_stages=1")
    assert read_metrics(run_dir)["weights_source"] == "none (random init)"
    trained = torch.load(run_dir / "checkpoints" / "model.ckpt", weights_only=True)["state_dict"]
    pl.seed_everything(0)  # the run's seed: the backbone it built first
    initial = TinyZoo().build("tinynet", False).state_dict()
    # The first stage (the stem: conv and BatchNorm) stayed as built, statistics included; the next one trained.
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        assert torch.equal(trained[f"backbone.{key}"], initial[key]), key
    assert not torch.equal(trained["backbone.2.0.weight"], initial["2.0.weight"])
