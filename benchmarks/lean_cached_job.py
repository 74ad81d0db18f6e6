"""Benchmark 5: a job on warm cached features, garbage-lit vs a plain PyTorch head-training loop.

    python benchmarks/lean_cached_job.py --cache-dir /work/runs/bench_cache     # 600 TrashNet photos, ~1 min warm
    python benchmarks/lean_cached_job.py --per-class 10 --model resnet18 --epochs 2 --repeats 1   # a smoke run

Both sides train the same new linear head (Adam, cross-entropy, batch 32, ``--epochs`` epochs) on the
same cached ``efficientnet_lite0`` features of the same images (no rotation, so one view per image).
The features are filled once (by the first call, outside the timings; the cache folder is reused
across launches). Then, in one Python process, the sides alternate ``--repeats`` times:

* plain: load the train and test features, ``nn.Linear`` + ``Adam`` + ``CrossEntropyLoss`` over
  shuffled index batches, test accuracy at the end;
* garbage-lit: ``train(cfg)``, the whole job a sweep runs in-process (scan, split, model with its
  ImageNet weights, Trainer, per-epoch test evaluation, checkpoints, metrics.json, TensorBoard, the
  final test of the chosen checkpoint).

A training step is the training part of the epochs (from an epoch's start to the start of its
evaluation) divided by the number of steps, data loading and hooks included, on both sides. "Beyond
its steps" is a job's wall time minus its training steps. The fastest repeat of each side counts.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from garbage_lit.config import CONFIG_DIR
from garbage_lit.features.datamodule import FeatureDataModule
from garbage_lit.features.dataset import FeatureDataset
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.records.folder import TEST_ACC
from garbage_lit.run.components import data_module
from garbage_lit.train import train

from common import parser as common_parser
from common import report, subset, workdir


def clock() -> float:
    """Seconds on the benchmark's clock: wall time, or with ``--cpu-time`` this process's CPU time, which other
    processes on a shared machine do not inflate (both sides run single-threaded then)."""
    return time.process_time() if CPU_TIME else time.perf_counter()


CPU_TIME = False


class StepClock(pl.Callback):
    """Sums the training part of every epoch (its start to the start of its evaluation) and counts its steps.

    The newest instance is ``StepClock.latest`` (``train(cfg)`` builds its own from the config).
    """

    latest: StepClock | None = None

    def __init__(self) -> None:
        self.seconds, self.steps, self._started = 0.0, 0, None
        StepClock.latest = self

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = clock()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.steps += 1

    def _stop(self) -> None:
        if self._started is not None:
            self.seconds += clock() - self._started
            self._started = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop()


def compose_cfg(args: argparse.Namespace, data: Path, output_dir: Path) -> DictConfig:
    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            f"model={args.model}", "data=folder", f"data.root={data}", "data.rotation_degrees=0", "optim=adam",
            "cache.features=true",  # the default (auto) turns it on here; true fails loudly if it could not
            "+callbacks.step_clock._target_=__main__.StepClock",
            f"lr={args.lr}", f"epochs={args.epochs}", f"batch_size={args.batch_size}",
            f"data.image_size={args.image_size}", f"data.resize_size={args.resize_size}",
            "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.cache.dir = str(args.cache_dir)
    return cfg


def features_of(cfg: DictConfig) -> dict[str, FeatureDataset]:
    """The run's cached train and test features (filled here if the cache is cold), as the data module serves them."""
    datamodule = data_module(cfg)
    datamodule.setup("fit")
    model = instantiate(cfg.model, _convert_="all", num_classes=datamodule.num_classes)
    features = FeatureDataModule(datamodule, model.backbone, cfg.model.arch, cfg.cache.feature_views,
                                 cfg.cache.dir)
    return {"train": features.train_dataloader().dataset, "test": features.test_dataloader().dataset}


def plain_job(cfg: DictConfig, paths: dict[str, Path], labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """The plain loop as a whole job: load the features, train the head, test it."""
    start = clock()
    torch.manual_seed(cfg.seed)
    x = {split: torch.from_numpy(np.load(path))[0] for split, path in paths.items()}
    head = torch.nn.Linear(x["train"].shape[1], int(labels["train"].max()) + 1)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    criterion = torch.nn.CrossEntropyLoss()
    steps, train_start = 0, clock()
    for _ in range(cfg.epochs):
        for index in torch.randperm(len(x["train"])).split(cfg.batch_size):
            loss = criterion(head(x["train"][index]), labels["train"][index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    train_seconds = clock() - train_start
    with torch.no_grad():
        accuracy = (head(x["test"]).argmax(1) == labels["test"]).float().mean().item()
    return {"job": clock() - start, "steps": train_seconds, "step": train_seconds / steps,
            "acc": accuracy}


class BareHead(pl.LightningModule):
    """The plain loop's head, loss and optimizer as a LightningModule with nothing else: Lightning's own floor."""

    def __init__(self, features: int, classes: int, lr: float) -> None:
        super().__init__()
        self.head, self.criterion, self.lr = torch.nn.Linear(features, classes), torch.nn.CrossEntropyLoss(), lr

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.criterion(self.head(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def bare_lightning_steps(cfg: DictConfig, paths: dict[str, Path], labels: dict[str, torch.Tensor]) -> float:
    """Seconds a step of :class:`BareHead` under a Trainer with no logger, callbacks or checkpoints (same batches)."""
    x, y = torch.from_numpy(np.load(paths["train"]))[0], labels["train"]

    class Shuffled:  # index batches of a fresh permutation each epoch, as the plain loop draws them
        def __len__(self) -> int:
            return math.ceil(len(x) / cfg.batch_size)

        def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            return ((x[index], y[index]) for index in torch.randperm(len(x)).split(cfg.batch_size))

    clock = StepClock()
    trainer = pl.Trainer(max_epochs=cfg.epochs, logger=False, callbacks=[clock], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(BareHead(x.shape[1], int(y.max()) + 1, cfg.lr), train_dataloaders=Shuffled())
    return clock.seconds / clock.steps


def lit_job(cfg: DictConfig) -> dict[str, float]:
    """``train(cfg)``, timed by the step clock among its callbacks."""
    start = clock()
    result = train(cfg)
    seconds = clock() - start
    steps = StepClock.latest
    return {"job": seconds, "steps": steps.seconds, "step": steps.seconds / steps.steps, "acc": result[TEST_ACC]}


def main() -> None:
    parser = common_parser(__doc__, per_class=100, model="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder (default: a fresh one)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by this process's CPU time (a shared, loaded machine); implies --threads 1")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's); a 1280 x 6 head gains nothing from more")
    args = parser.parse_args()
    global CPU_TIME
    CPU_TIME = args.cpu_time
    if args.cpu_time:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)

    work = workdir("lean")
    args.cache_dir = args.cache_dir or work / "cache"
    data = subset(args.data, args.per_class, args.cache_dir)
    cfg = compose_cfg(args, data, work / "run_cold")
    features = features_of(cfg)  # fills the cache when cold
    paths = {split: f.path for split, f in features.items()}
    labels = {split: f.labels for split, f in features.items()}
    print(f"features: {', '.join(f'{k} {tuple(f.features.shape)}' for k, f in features.items())}", flush=True)

    cold = lit_job(cfg)  # the first job of the process: imports done, but every first-call cost paid here
    plain, lit, bare = [], [], []
    for repeat in range(args.repeats):
        plain.append(plain_job(cfg, paths, labels))
        lit.append(lit_job(compose_cfg(args, data, work / f"run_warm{repeat}")))
        bare.append(bare_lightning_steps(cfg, paths, labels))
    best_plain = min(plain, key=lambda r: r["job"])
    best_lit = min(lit, key=lambda r: r["job"])
    step_plain = min(r["step"] for r in plain)
    step_lit = min(r["step"] for r in lit)
    beyond = min(r["job"] - r["steps"] for r in lit)

    def row(r: dict[str, float]) -> str:
        return (f"job {r['job']:6.2f} s, training steps {r['steps']:6.3f} s ({r['step'] * 1e3:6.2f} ms/step), "
                f"beyond the steps {r['job'] - r['steps']:6.2f} s, test acc {r['acc']:.3f}")

    rows = [("plain PyTorch, each repeat", "; ".join(f"{r['job']:.2f} s" for r in plain)),
            ("garbage-lit warm, each repeat", "; ".join(f"{r['job']:.2f} s" for r in lit)),
            ("plain PyTorch, fastest", row(best_plain)),
            ("garbage-lit warm job, fastest", row(best_lit)),
            ("garbage-lit, first job in the process", row(cold)),
            ("per step (fastest of each)", f"{step_plain * 1e3:.2f} ms plain, {step_lit * 1e3:.2f} ms garbage-lit: "
                                          f"{step_lit / step_plain:.2f}x the plain step"),
            ("Lightning's floor per step", f"{min(bare) * 1e3:.2f} ms: {min(bare) / step_plain:.2f}x the plain step "
                                           f"(the same head in a bare LightningModule, no logger or callbacks)"),
            ("garbage-lit step / Lightning's floor", f"{step_lit / min(bare):.2f}x (target <= 1.5x)"),
            ("job beyond its steps", f"{beyond:.2f} s garbage-lit (target <= 1 s), "
                                     f"{best_plain['job'] - best_plain['steps']:.3f} s plain")]
    ratio = best_lit["job"] / best_plain["job"]
    ok = step_lit / min(bare) <= 1.5 and beyond <= 1
    clock_name = "CPU time" if CPU_TIME else "wall time"
    report(f"warm cached job ({clock_name}): {args.model} features of {data} ({len(labels['train'])} train / "
           f"{len(labels['test'])} test images), Adam, batch {args.batch_size}, {args.epochs} epochs", rows,
           "whole job (garbage-lit warm / plain)", ratio, "step <= 1.5x Lightning's floor, <= 1 s beyond the steps",
           ok)
    print(f"  work folder: {work}")


if __name__ == "__main__":
    main()
