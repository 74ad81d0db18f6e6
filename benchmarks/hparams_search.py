"""Benchmark 5: the cost of one Optuna trial of ``hparams_search=optuna`` vs one plain-PyTorch head training.

    python benchmarks/hparams_search.py multirun/search/search        # a finished (or running) search folder

The search side is read from the folder: trials done, their total and median seconds (ask to tell:
config composition, the job folder, data set-up from the scan cache, the backbone, Lightning's
fit with validation each epoch, metrics.json, TensorBoard, Optuna's storage). The plain side trains the
best trial's head (same optimizer, lr, weight decay, momentum, batch size, epochs, label smoothing) on the
same cached features, loaded once as tensors, with a bare PyTorch loop that also computes validation
accuracy every epoch, single-threaded like the trials. Target: 100 trials in under 5 minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from garbage_lit.features.datamodule import FeatureDataModule
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.run.components import data_module

from common import report


def cached_features(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Train features (one view per image) and labels, val features and labels, feature size, classes of a run."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg.paths.output_dir = None  # ${hydra:runtime.output_dir} does not resolve outside Hydra; nothing is written
    datamodule = data_module(cfg)
    datamodule.setup("fit")
    model = instantiate(cfg.model, _convert_="all", num_classes=datamodule.num_classes)
    features = FeatureDataModule(datamodule, model.backbone, cfg.model.arch, cfg.cache.feature_views,
                                 cfg.cache.dir)
    train, val = features.train_dataloader().dataset, features.val_dataloader()[0].dataset
    return (train.features[0], train.labels, val.features[0], val.labels, train.features.shape[-1],
            datamodule.num_classes)


def plain_training(cfg_path: Path, features: tuple, repeats: int) -> tuple[float, float]:
    """Seconds (fastest of ``repeats``) and final val accuracy of a bare loop with the run's optimizer settings."""
    cfg = OmegaConf.load(cfg_path)
    x, y, val_x, val_y, dim, classes = features
    best = float("inf")
    for _ in range(repeats):
        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        head = nn.Linear(dim, classes)
        optimizer = instantiate(cfg.optim)([("head", head, None)])
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.model.label_smoothing)
        for _epoch in range(cfg.epochs):
            for batch in torch.randperm(len(x)).split(cfg.batch_size):
                optimizer.zero_grad()
                criterion(head(x[batch]), y[batch]).backward()
                optimizer.step()
            with torch.no_grad():
                accuracy = (head(val_x).argmax(1) == val_y).float().mean().item()
        best = min(best, time.perf_counter() - start)
    return best, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("search_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    register_resolvers()
    torch.set_num_threads(1)
    summary = json.loads((args.search_dir / "search.json").read_text())
    with (args.search_dir / "trials.csv").open() as handle:
        trials = [r for r in csv.DictReader(handle) if r["state"] in ("complete", "pruned")]  # not failed/killed
    seconds = [float(r["seconds"]) for r in trials]
    complete = [float(r["seconds"]) for r in trials if r["state"] == "complete"]
    best_dir = args.search_dir / str(summary["best"]["trial"])
    plain, plain_acc = plain_training(best_dir / ".hydra" / "config.yaml", cached_features(best_dir), args.repeats)
    per_trial = statistics.median(complete)
    rows = [("trials (complete + pruned)", f"{len(trials)} of {sum(summary['trials'].values())} "
                                           f"({dict((k, v) for k, v in summary['trials'].items() if v)})"),
            ("search, sum of their seconds", f"{sum(seconds):.1f} s = {sum(seconds) / 60:.2f} min"),
            ("search, median completed trial", f"{per_trial:.2f} s"),
            ("search, 100 trials at that median", f"{100 * per_trial / 60:.2f} min"),
            ("plain PyTorch, best trial's head", f"{plain:.2f} s (val acc {plain_acc:.4f}; "
                                                  f"the trial's {summary['best']['val/acc']:.4f})")]
    report("hparams_search: one trial vs a plain-PyTorch head training on the same features", rows,
           "trial / plain", per_trial / plain, "100 trials < 5 min", 100 * per_trial / 60 < 5)


if __name__ == "__main__":
    main()
