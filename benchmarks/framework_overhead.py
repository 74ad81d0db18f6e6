"""Benchmark 3: framework overhead, a training epoch through garbage-lit vs a plain PyTorch loop.

    python benchmarks/framework_overhead.py                      # resnet18 frozen, 224 px, 288 images
    python benchmarks/framework_overhead.py --per-class 4 --image-size 64 --repeats 1   # a quick smoke run

Both sides train the same model (the paper's: frozen backbone, new linear head, SGD) on the same
DataLoader (the run's training loader, decoded-image cache on so JPEG decoding adds no noise) with
the same batch size. The garbage-lit side is ``Trainer.fit`` with the run's callbacks (checkpoints,
metrics.json, learning-rate monitor) and TensorBoard logger, metrics and all, timed from the start of
``fit`` to its end (set-up and checkpoint writing included); validation is off on both sides, so it
is one training epoch each. The sides alternate ``--repeats`` times and the fastest of each counts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from garbage_lit.callbacks.metrics_json import MetricsJson
from garbage_lit.config import CONFIG_DIR
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.run.components import data_module

from common import parser as common_parser
from common import report, subset, workdir


def compose_cfg(args: argparse.Namespace, data: Path, work: Path) -> DictConfig:
    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            f"model={args.model}", f"model.weights={args.weights}", "data=folder", f"data.root={data}",
            "cache.images=true", f"data.image_size={args.image_size}", f"data.resize_size={args.resize_size}",
            f"batch_size={args.batch_size}", "epochs=1", "+trainer.limit_val_batches=0",
            "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(work / "run")
        cfg.cache.dir = str(work / "cache")
    return cfg


def build(cfg: DictConfig):
    pl.seed_everything(cfg.seed)
    datamodule = data_module(cfg)
    datamodule.setup("fit")
    model = instantiate(cfg.model, _convert_="all", num_classes=datamodule.num_classes,
                        optimizer=instantiate(cfg.optim))
    return datamodule, model


def through_garbage_lit(cfg: DictConfig) -> float:
    datamodule, model = build(cfg)
    callbacks = [MetricsJson(cfg.paths.output_dir), *(instantiate(c) for c in cfg.callbacks.values() if c is not None)]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return time.perf_counter() - start


def plain_loop(cfg: DictConfig) -> float:
    datamodule, model = build(cfg)
    loader = datamodule.train_dataloader()
    start = time.perf_counter()
    optimizer = instantiate(cfg.optim)([("head", model.head, None)])  # the backbone is frozen
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    model.backbone.eval()  # frozen, as GarbageClassifier keeps it
    for images, labels in loader:
        loss = criterion(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = common_parser(__doc__, per_class=48, model="resnet18")
    parser.add_argument("--weights", default="none", help="timing does not depend on the weights' values")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    work = workdir("overhead")
    cfg = compose_cfg(args, subset(args.data, args.per_class, work), work)
    build(cfg)[0].train_dataloader()  # fill the decoded-image cache outside the timings
    plain, lit = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(cfg))
        lit.append(through_garbage_lit(cfg))
    rows = [("plain PyTorch loop", f"{min(plain):8.2f} s per epoch  (all: {', '.join(f'{s:.2f}' for s in plain)})"),
            ("garbage-lit Trainer.fit", f"{min(lit):8.2f} s per epoch  (all: {', '.join(f'{s:.2f}' for s in lit)})")]
    ratio = min(lit) / min(plain)
    report(f"framework overhead: {args.model} frozen, {args.image_size}px, batch {args.batch_size}, "
           f"{args.per_class} images per class of {args.data}", rows,
           "overhead (garbage-lit / plain epoch time)", ratio, "<= 1.10x", ratio <= 1.10)


if __name__ == "__main__":
    main()
