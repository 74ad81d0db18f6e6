"""Train one classifier, evaluate its best checkpoint on the test split, record everything.

    python -m garbage_lit.train                                   # bundled sample, default config
    python -m garbage_lit.train -m optim=sgd,adam lr=0.003,0.01   # a sweep: one folder per job

Each job folder holds ``metrics.json`` (per-epoch history, final test metrics, weights source,
provenance), ``split_manifest.csv``, ``data_problems.csv`` (when any), ``.hydra/`` (the resolved
config), ``checkpoints/`` (``model.ckpt``, the kept model, whole; the training checkpoints) and ``tensorboard/``.

    python -m garbage_lit.train ... resume=true                   # continue the interrupted run of `...`

A run stopped by Ctrl-C or SIGTERM records ``status: interrupted`` and the command that resumes it; see
:mod:`garbage_lit.run.failures` for how each way of stopping is recorded and told.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.plugins import Plugins
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.precision import Precision

from garbage_lit.callbacks.metrics_json import MetricsJson
from garbage_lit.callbacks.random_states import RandomStates
from garbage_lit.config import CONFIG_DIR, validate_config
from garbage_lit.features.datamodule import backbone_detached, feature_datamodule
from garbage_lit.loggers.base import log_run_summary, plan_keys
from garbage_lit.models.calibration import fit_on_validation
from garbage_lit.models.metrics import class_metric_keys, per_class_accuracy
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.records.folder import (
    CHECKPOINT_DIR,
    COMPLETED,
    MODEL_FILE,
    PER_CLASS_ACC,
    RUNNING,
    TEST,
    TEST_ACC,
    TEST_RECALL,
    metric_key,
    read_metrics,
)
from garbage_lit.records.provenance import provenance
from garbage_lit.run import commands
from garbage_lit.run.components import data_module
from garbage_lit.run.failures import recording_stops
from garbage_lit.run.launch import prepare_sweep_job, share_output_dir_with_ddp_ranks
from garbage_lit.run.requeue import requeue_callbacks, requeue_point, trainer_plugins
from garbage_lit.run.resume import continue_in, launch_overrides, leave_pointer, resume_point
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

    datamodule = data_module(cfg)
    datamodule.setup("fit")
    model = instantiate(
        cfg.model,
        _convert_="all",  # plain containers: checkpoints then load with torch.load(weights_only=True)
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        class_bins=datamodule.class_bins,
        class_counts=datamodule.train_class_counts,
        eval_splits=datamodule.eval_splits,
        preprocessing=datamodule.preprocessing(),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )
    metrics_json = MetricsJson(output_dir, resuming=resume is not None)
    callbacks = [metrics_json, RandomStates(metrics_json),
                 *(instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None),
                 *requeue_callbacks(output_dir, metrics_json, resuming=resume is not None)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    # Every tracker knows the class names' metrics before training: a name one refuses is renamed, never a crash later.
    plan_keys(loggers, class_metric_keys(datamodule.class_names, datamodule.class_bins))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      **trainer_plugins(cfg.trainer))
    # A frozen backbone's features are computed once and the head trains on them: decided here, where the model
    # and the trainer's callbacks are both known.
    features = feature_datamodule(cfg.cache.features, cfg.cache.feature_views, cfg.cache.dir, datamodule,
                                  model, trainer)

    metrics_json.update(
        status=RUNNING,
        weights_source=model.weights_source,
        config=OmegaConf.to_container(cfg, resolve=True),
        data={"root": str(datamodule.root), "layout": datamodule.hparams.layout,
              "class_names": datamodule.class_names,
              "split_sizes": {k: len(v) for k, v in datamodule.splits.items()},
              "split_manifest_sha256": datamodule.manifest_sha256,
              "fold": datamodule.index.fold_record},
        feature_cache=features is not None,
        provenance=provenance(),
        overrides=launch_overrides(),  # lets resume=true check a reused folder belongs to this command
        resumed_from=_in_run(resume.ckpt_path, output_dir) if resume and resume.ckpt_path else None,
    )
    with backbone_detached(model) if features is not None else nullcontext():
        data = features or datamodule
        trainer.fit(model, datamodule=data, ckpt_path=resume.ckpt_path if resume is not None else None)
        final: dict[str, Any] = {"checkpoint": f"{CHECKPOINT_DIR}/{MODEL_FILE}" if cfg.save_model else None,
                                 **_keep_chosen_epoch(trainer, model)}  # the checkpoint relative to the run
        if cfg.temperature_scaling:  # on the validation split, before the test and the saved model use it
            final.update(fit_on_validation(model, data))
        if cfg.test:
            with full_precision(trainer, model):  # the model as evaluate, predict and the export run it
                trainer.test(model, datamodule=data)
                final.update(_test_results(trainer, model), precision=trainer.precision)
    if cfg.save_model:
        trainer.save_checkpoint(output_dir / CHECKPOINT_DIR / MODEL_FILE, weights_only=True)  # the whole model, once

    objective = cfg.get("optimized_metric")
    if objective:
        # The kept epoch's value (metrics.json's row of final["epoch"]): what a sweeper optimizes, never a test metric.
        row = next((e for e in metrics_json.epochs if e["epoch"] == final["epoch"]), {})
        final[objective] = row.get(objective)
    metrics_json.update(final=final, best_epoch=final["epoch"])
    # Each logger gets what the run folder records; the run is completed only once they have it (the last thing).
    log_run_summary(trainer.loggers, cfg, output_dir, trainer.global_step)
    metrics_json.update(status=COMPLETED)
    if TEST_ACC in final:
        log.info("test accuracy %.4f, macro recall %.4f (weights: %s); results in %s",
                 final[TEST_ACC], final[TEST_RECALL], model.weights_source, output_dir)
    else:
        log.info("%s %s at epoch %d (test split not evaluated: test=false); results in %s",
                 objective, final.get(objective), final["epoch"], output_dir)
    return final


def _keep_chosen_epoch(trainer: pl.Trainer, model: pl.LightningModule) -> dict[str, Any]:
    """Load the epoch the checkpoint callback chose by a monitored metric into ``model`` (which holds the last one).

    Returns the kept epoch's index (``epoch``) and the metric it was chosen on (``chosen_on``; None: the last epoch).
    """
    chooser = trainer.checkpoint_callback
    if chooser is None or chooser.monitor is None or not chooser.best_model_path:
        return {"epoch": trainer.current_epoch - 1, "chosen_on": None}
    checkpoint = torch.load(chooser.best_model_path, map_location=model.device, weights_only=True)
    model.load_state_dict(checkpoint["state_dict"])
    return {"epoch": int(checkpoint["epoch"]), "chosen_on": chooser.monitor}


@contextmanager
def full_precision(trainer: pl.Trainer, model: pl.LightningModule) -> Iterator[None]:
    """``trainer`` in 32-bit precision (``model`` in float32) for the final test, whatever it trained in.

    A bf16-mixed run's checkpoint is used in float32 by evaluate, predict and the export; testing it under bf16
    autocast reported another number (0.9386 against evaluate's 0.9307 on TrashNet). A ``*-true`` half precision
    run's weights are cast up exactly, as loading its checkpoint does.
    """
    trained_in = trainer.strategy.precision_plugin
    trainer.strategy.precision_plugin = Precision()
    model.float()
    try:
        yield
    finally:
        trainer.strategy.precision_plugin = trained_in


def _test_results(trainer: pl.Trainer, model: pl.LightningModule) -> dict[str, Any]:
    """The final test's logged metrics, its per-class accuracy (None for classes without test images), confusion."""
    per_class = metric_key(TEST, PER_CLASS_ACC) + "/"
    logged = {key: float(value) for key, value in trainer.callback_metrics.items()
              if key.startswith(f"{TEST}/") and not key.startswith(per_class)}
    return {**logged, PER_CLASS_ACC: per_class_accuracy(model.confusion_matrix, model.class_names),
            "confusion_matrix": model.confusion_matrix.tolist()}


def _in_run(path: str | Path, run_dir: Path) -> str:
    """``path`` as metrics.json records it: relative to the run folder when inside it, so the folder can move."""
    relative = os.path.relpath(path, run_dir)
    return str(path) if relative.startswith("..") else relative


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train one job; return its ``optimized_metric`` (default ``val/acc``) for a sweeper, None without a val split.

    Never a test metric by default: a sweeper that optimizes the return value would otherwise tune on the test set.
    """
    with recording_stops(cfg):  # interrupted, failed or pruned: in metrics.json, and said in a line or two
        prepare_sweep_job(cfg)  # one GPU per job, DataLoader workers inside parallel launchers
        return train(cfg).get(cfg.optimized_metric)


def cli() -> None:
    """The command line (``garbage-lit-train``, ``python -m garbage_lit.train``)."""
    commands.cli(main, "train")


if __name__ == "__main__":
    cli()
