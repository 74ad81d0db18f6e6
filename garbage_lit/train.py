"""Train one classifier, evaluate its best checkpoint on the test split, record everything.

    python -m garbage_lit.train                                   # bundled sample, default config
    python -m garbage_lit.train -m optim=sgd,adam lr=0.003,0.01   # a sweep: one folder per job

Each job folder holds ``metrics.json`` (per-epoch history, final test metrics, weights source,
provenance), ``split_manifest.csv``, ``data_problems.csv`` (when any), ``.hydra/`` (the resolved
config), ``checkpoints/`` (best and last) and ``tensorboard/``.

    python -m garbage_lit.train ... resume=true                   # continue the interrupted run of `...`

A run stopped by Ctrl-C or SIGTERM records ``status: interrupted`` and the command that resumes it; see
:mod:`garbage_lit.run.failures` for how each way of stopping is recorded and told.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.plugins import Plugins
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from garbage_lit.checkpoints import complete_checkpoints
from garbage_lit.config import CONFIG_DIR, register_resolvers, unknown_key_hint, validate_config
from garbage_lit.plots import confusion_figure
from garbage_lit.run.failures import recording_stops
from garbage_lit.run.folder import COMPLETED, LOSS, RUNNING, TEST, TEST_ACC, TEST_RECALL, metric_key, read_metrics
from garbage_lit.run.launch import prepare_sweep_job, share_output_dir_with_ddp_ranks
from garbage_lit.run.provenance import provenance
from garbage_lit.run.recorder import MetricsJson
from garbage_lit.run.requeue import requeue_callbacks, requeue_point, trainer_plugins
from garbage_lit.run.resume import continue_in, launch_overrides, leave_pointer, resume_point
from garbage_lit.run.tensorboard import log_hparams
from hydra_plugins.garbage_lit_optuna.optuna_sweeper import GarbageLitOptunaSweeper
from hydra_plugins.garbage_lit_slurm.slurm_launcher import SlurmLauncher

log = logging.getLogger(__name__)

register_resolvers()
# hparams_search=optuna's sweeper and hydra/launcher=slurm's launcher. Hydra also finds them by scanning
# hydra_plugins/, except in editable installs, whose import hook hides namespace packages from that scan.
Plugins.instance().register(GarbageLitOptunaSweeper)
Plugins.instance().register(SlurmLauncher)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job described by ``cfg``; return its final results (``test/acc``, ``test/recall``, ...).

    With ``resume=true`` or ``ckpt_path`` the job continues an earlier run in that run's folder
    (``cfg.paths.output_dir`` is pointed there), or returns its results if it had completed ``epochs``.
    A SLURM job that was requeued (time limit, preemption) continues its own folder the same way.
    """
    validate_config(cfg)
    resume = resume_point(cfg) or requeue_point(cfg)
    if resume is not None and resume.finished(cfg.epochs):
        log.info("%s already completed; nothing to resume", resume.run_dir)
        leave_pointer(cfg.paths.output_dir, resume.run_dir)
        return read_metrics(resume.run_dir)["final"]
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
        class_bins=datamodule.class_bins,
        eval_splits=datamodule.eval_splits,
        preprocessing=datamodule.preprocessing(),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )

    metrics_json = MetricsJson(output_dir, resuming=resume is not None)
    callbacks = [metrics_json, *requeue_callbacks(output_dir, metrics_json, resuming=resume is not None),
                 *_instantiate_callbacks(cfg, has_val="val" in datamodule.eval_splits)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      **trainer_plugins(cfg.trainer))

    metrics_json.update(
        status=RUNNING,
        weights_source=model.weights_source,
        config=OmegaConf.to_container(cfg, resolve=True),
        data={"root": str(datamodule.root), "layout": datamodule.hparams.layout,
              "class_names": datamodule.class_names,
              "split_sizes": {k: len(v) for k, v in datamodule.splits.items()},
              "split_manifest_sha256": datamodule.manifest_sha256},
        provenance=provenance(),
        overrides=launch_overrides(),  # lets resume=true check a reused folder belongs to this command
        resumed_from=_in_run(resume.ckpt_path, output_dir) if resume and resume.ckpt_path else None,
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume.ckpt_path if resume is not None else None)

    checkpoint = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    ckpt_path = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
    if checkpoint is not None:
        # Written head-only while training on cached features: the chosen and the last one get their backbone back.
        complete_checkpoints(trainer, model, [ckpt_path, checkpoint.last_model_path])
    # Without a monitored metric (or a kept file) the kept epoch is the last one, which the model in memory holds.
    kept_is_last = not ckpt_path or checkpoint.monitor is None
    final: dict[str, Any] = {"checkpoint": _in_run(ckpt_path, output_dir) if ckpt_path else None,
                             "epoch": trainer.current_epoch - 1 if kept_is_last else _checkpoint_epoch(ckpt_path)}
    objective = cfg.get("optimized_metric")
    if objective:
        # The kept epoch's value (metrics.json's row of final["epoch"]): what a sweeper optimizes, never a test metric.
        row = next((e for e in metrics_json.epochs if e["epoch"] == final["epoch"]), {})
        final[objective] = row.get(objective)
    if cfg.get("test", True):
        trainer.test(model, datamodule=datamodule, ckpt_path=None if kept_is_last else ckpt_path)
        final.update(model.final_results)
        final[metric_key(TEST, LOSS)] = float(trainer.callback_metrics[metric_key(TEST, LOSS)])
    metrics_json.update(status=COMPLETED, final=final, best_epoch=final["epoch"])
    _log_to_tensorboard(trainer, cfg, model, final)
    if TEST_ACC in final:
        log.info("test accuracy %.4f, macro recall %.4f (weights: %s); results in %s",
                 final[TEST_ACC], final[TEST_RECALL], model.weights_source, output_dir)
    else:
        log.info("%s %s at epoch %d (test split not evaluated: test=false); results in %s",
                 objective, final.get(objective), final["epoch"], output_dir)
    return final


def _instantiate_callbacks(cfg: DictConfig, has_val: bool) -> list[pl.Callback]:
    callbacks = []
    for name, conf in (cfg.get("callbacks") or {}).items():
        if conf is None:
            continue
        callback = instantiate(conf)
        if isinstance(callback, ModelCheckpoint):
            if not has_val and str(callback.monitor).startswith("val/"):
                # Without a validation split, choosing an epoch by test accuracy would leak the test set.
                log.info("callbacks.%s: no validation split (data.val_ratio=0), keeping the last epoch", name)
                callback.monitor = None
            if callback.monitor is None and callback.save_last is True and callback.save_top_k == 1 \
                    and _saves_every_epoch(conf):
                # The epoch kept is the newest, so last.ckpt links to it (Lightning's save_last="link") instead
                # of writing the same state twice every epoch.
                callback.save_last = "link"
        callbacks.append(callback)
    return callbacks


def _saves_every_epoch(conf: DictConfig) -> bool:
    """Whether a ModelCheckpoint config saves at the end of every epoch (and at no other time)."""
    return conf.get("every_n_epochs") in (None, 1) and not conf.get("every_n_train_steps") \
        and not conf.get("train_time_interval")


def _in_run(path: str | Path, run_dir: Path) -> str:
    """``path`` as metrics.json records it: relative to the run folder when inside it, so the folder can move."""
    relative = os.path.relpath(path, run_dir)
    return str(path) if relative.startswith("..") else relative


def _checkpoint_epoch(ckpt_path: str) -> int:
    return int(torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)["epoch"])  # no tensor read


def _log_to_tensorboard(trainer: pl.Trainer, cfg: DictConfig, model: pl.LightningModule, final: dict) -> None:
    """Confusion matrix figure and hyperparameters with the final metrics (the HParams dashboard); rank 0 only."""
    if not trainer.is_global_zero:
        return  # other DDP ranks have no event writer, as in Lightning's own log_hyperparams
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            continue
        if "confusion_matrix" in final:
            figure = confusion_figure(final["confusion_matrix"], model.class_names)
            logger.experiment.add_figure(metric_key(TEST, "confusion_matrix"), figure,
                                         global_step=trainer.global_step)
        # The metrics' values are the scalars already logged (HParams shows a tag's last value: test/* from
        # trainer.test, the optimized val metric's last epoch).
        bins = [key for key in final if key.startswith(metric_key(TEST, "bin_"))]  # with data.groups
        keys = (TEST_ACC, TEST_RECALL, metric_key(TEST, LOSS), *bins, cfg.get("optimized_metric"))
        log_hparams(logger, hparams_of(cfg, model.weights_source),  # swept columns shown first
                    metrics=[key for key in dict.fromkeys(keys) if key and final.get(key) is not None])
        logger.finalize("success")


# Shown when the config has them (momentum only with SGD, the backbone's lr ratio only when fine-tuning).
_OPTIONAL_HPARAMS = (("weight_decay", "optim.weight_decay"), ("momentum", "optim.momentum"),
                     ("label_smoothing", "model.label_smoothing"),
                     ("backbone_lr_ratio", "callbacks.backbone_finetuning.backbone_initial_ratio_lr"))


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
        **{name: OmegaConf.select(cfg, key) for name, key in _OPTIONAL_HPARAMS
           if OmegaConf.select(cfg, key) is not None},
        "seed": cfg.seed,
        "scheduler": cfg.scheduler._target_.rsplit(".", 1)[-1] if cfg.get("scheduler") else "none",
        "data": f"{cfg.data.layout}:{Path(str(cfg.data.root)).name}",
    }


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train one job; return its ``optimized_metric`` (default ``val/acc``) for a sweeper, None without a val split.

    Never a test metric by default: a sweeper that optimizes the return value would otherwise tune on the test set.
    """
    with recording_stops(cfg):  # interrupted, failed or pruned: in metrics.json, and said in a line or two
        prepare_sweep_job(cfg)  # one GPU per job, DataLoader workers inside parallel launchers
        return train(cfg).get(cfg.optimized_metric)


def cli() -> None:
    """The command line: Hydra's app, plus the existing keys when Hydra refused a misspelt one."""
    try:
        main()
    except SystemExit as exc:
        if exc.code == 1:  # Hydra refused the command line (an interrupted run exits 130 or 143)
            hint = unknown_key_hint(sys.argv[1:])
            if hint:
                print(hint, file=sys.stderr)
        raise


if __name__ == "__main__":
    cli()
