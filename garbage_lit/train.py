"""Train one classifier, evaluate its best checkpoint on the test split, record everything.

    python -m garbage_lit.train                                   # bundled sample, default config
    python -m garbage_lit.train -m optim=sgd,adam lr=0.003,0.01   # a sweep: one folder per job

Each job folder holds ``metrics.json`` (per-epoch history, final test metrics, weights source,
provenance), ``split_manifest.csv``, ``data_problems.csv`` (when any), ``.hydra/`` (the resolved
config), ``checkpoints/`` (best and last) and ``tensorboard/``.

    python -m garbage_lit.train ... resume=true                   # continue the interrupted run of `...`
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from garbage_lit.callbacks.metrics_json import METRICS_NAME, MetricsJson, write_json_atomic
from garbage_lit.config import register_resolvers
from garbage_lit.data import GarbageDataModule
from garbage_lit.distributed import share_output_dir_with_ddp_ranks
from garbage_lit.models import GarbageClassifier
from garbage_lit.plots import confusion_figure
from garbage_lit.provenance import provenance
from garbage_lit.resume import continue_in, launch_overrides, leave_pointer, resume_point
from garbage_lit.sweeps.job_setup import prepare_sweep_job
from garbage_lit.validate import unknown_key_hint, validate_config

log = logging.getLogger(__name__)

register_resolvers()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job described by ``cfg``; return its final test results.

    With ``resume=true`` or ``ckpt_path`` the job continues an earlier run in that run's folder
    (``cfg.paths.output_dir`` is pointed there), or returns its results if it had completed ``epochs``.
    """
    validate_config(cfg)
    resume = resume_point(cfg)
    if resume is not None and resume.finished(cfg.epochs):
        log.info("%s already completed; nothing to resume", resume.run_dir)
        leave_pointer(cfg.paths.output_dir, resume.run_dir)
        return json.loads((resume.run_dir / METRICS_NAME).read_text())["test"]
    if resume is not None:
        continue_in(cfg, resume)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    share_output_dir_with_ddp_ranks(output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = instantiate(
        cfg.model,
        _convert_="all",  # plain containers: checkpoints then load with torch.load(weights_only=True)
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        eval_splits=datamodule.eval_splits,
        preprocessing=datamodule.preprocessing(),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )
    attach_feature_cache(cfg, datamodule, model)

    metrics_json = MetricsJson(output_dir)
    callbacks = [metrics_json, *_instantiate_callbacks(cfg, has_val="val" in datamodule.eval_splits)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    metrics_json.update(
        status="running",
        weights_source=model.weights_source,
        config=OmegaConf.to_container(cfg, resolve=True),
        data={"root": str(datamodule.root), "layout": datamodule.hparams.layout,
              "class_names": datamodule.class_names,
              "split_sizes": {k: len(v) for k, v in datamodule.splits.items()},
              "split_manifest_sha256": datamodule.manifest_sha256},
        provenance=provenance(),
        overrides=launch_overrides(),  # lets resume=true check a reused folder belongs to this command
        resumed_from=str(resume.ckpt_path) if resume is not None else None,
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume.ckpt_path if resume is not None else None)

    checkpoint = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    ckpt_path = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
    test = {**model.final_results, "loss": float(trainer.callback_metrics["final/loss"]),
            "checkpoint": ckpt_path, "epoch": _checkpoint_epoch(ckpt_path, trainer)}
    metrics_json.update(status="completed", test=test, best_epoch=test["epoch"])
    _log_to_tensorboard(trainer, cfg, model, test)
    log.info("test accuracy %.4f, macro recall %.4f (weights: %s); results in %s",
             test["acc"], test["recall"], model.weights_source, output_dir)
    return test


def attach_feature_cache(cfg: DictConfig, datamodule: GarbageDataModule, model: GarbageClassifier) -> None:
    """With data.feature_cache and a frozen backbone, let the head train on cached backbone features."""
    if not cfg.data.get("feature_cache"):
        return
    if not cfg.model.freeze_backbone:
        log.warning("data.feature_cache=true is ignored: model.freeze_backbone=false trains the backbone, "
                    "so its features change every step")
        return
    datamodule.attach_feature_extractor(model.backbone, cfg.model.arch)


def _instantiate_callbacks(cfg: DictConfig, has_val: bool) -> list[pl.Callback]:
    callbacks = []
    for name, conf in (cfg.get("callbacks") or {}).items():
        if conf is None:
            continue
        callback = instantiate(conf)
        if isinstance(callback, ModelCheckpoint) and not has_val and str(callback.monitor).startswith("val/"):
            # Without a validation split, choosing an epoch by test accuracy would leak the test set.
            log.info("callbacks.%s: no validation split (data.val_ratio=0), keeping the last epoch", name)
            callback.monitor = None
        callbacks.append(callback)
    return callbacks


def _checkpoint_epoch(ckpt_path: str | None, trainer: pl.Trainer) -> int:
    if ckpt_path:
        return int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"])
    return trainer.current_epoch - 1


def _log_to_tensorboard(trainer: pl.Trainer, cfg: DictConfig, model: pl.LightningModule, test: dict) -> None:
    """Confusion matrix figure and hyperparameters with final metrics (the HParams dashboard)."""
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            continue
        figure = confusion_figure(test["confusion_matrix"], model.class_names)
        logger.experiment.add_figure("final/confusion_matrix", figure, global_step=trainer.global_step)
        logger.log_hyperparams(hparams_of(cfg, model.weights_source),
                               metrics={"hp/test_acc": test["acc"], "hp/test_recall": test["recall"],
                                        "hp/test_loss": test["loss"], "hp/best_epoch": test["epoch"]})
        logger.finalize("success")


def hparams_of(cfg: DictConfig, weights_source: str) -> dict[str, Any]:
    """The flat hyperparameters that tell the jobs of a sweep apart."""
    return {
        "model": cfg.model.arch,
        "weights": weights_source,
        "freeze_backbone": cfg.model.freeze_backbone,
        "optimizer": cfg.optim._target_.rsplit(".", 1)[-1],
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "scheduler": cfg.scheduler._target_.rsplit(".", 1)[-1] if cfg.get("scheduler") else "none",
        "data": f"{cfg.data.layout}:{Path(str(cfg.data.root)).name}",
    }


def record_failure(output_dir: Path, exc: BaseException) -> None:
    """Mark the job failed in metrics.json and keep its traceback beside it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "failure.log").write_text("".join(traceback.format_exception(exc)))
    path = output_dir / METRICS_NAME
    try:
        payload = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        payload = {}
    payload.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    write_json_atomic(path, payload)


@hydra.main(version_base="1.3", config_path="pkg://garbage_lit.conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        prepare_sweep_job(cfg)  # one GPU per job, DataLoader workers inside parallel launchers
        return train(cfg)["acc"]
    except BaseException as exc:
        record_failure(Path(cfg.paths.output_dir), exc)  # the resumed run's folder when resuming
        raise


def cli() -> None:
    """The command line: Hydra's app, plus the existing keys when Hydra refused a misspelt one."""
    try:
        main()
    except SystemExit as exc:
        if exc.code:
            hint = unknown_key_hint(sys.argv[1:])
            if hint:
                print(hint, file=sys.stderr)
        raise


if __name__ == "__main__":
    cli()
