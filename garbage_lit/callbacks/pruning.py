"""Optuna pruning from Lightning: report the optimized validation metric each epoch, stop the trial when told."""

from __future__ import annotations

import functools
import logging

import optuna
import pytorch_lightning as pl

from garbage_lit.errors import ConfigError
from garbage_lit.search.storage import open_storage

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _study(storage: str, study_name: str) -> optuna.Study:
    """One storage connection per process, however many trials it runs."""
    return optuna.load_study(study_name=study_name, storage=open_storage(storage))


def _trial(storage: str, study_name: str, trial_id: int, pruner: optuna.pruners.BasePruner | None) -> optuna.Trial:
    """Trial ``trial_id`` of the stored study, judged by ``pruner`` (a storage does not keep the study's pruner)."""
    study = _study(storage, study_name)
    study.pruner = pruner or optuna.pruners.NopPruner()
    return optuna.trial.Trial(study, trial_id)


class OptunaPruning(pl.Callback):
    """Reports ``monitor`` (a validation metric) to Optuna trial ``trial_id`` at the end of every validation.

    Raises :class:`optuna.TrialPruned` when the study's pruner says the trial is unpromising; the
    search records it as pruned (``pruner``: the study's, ``hparams_search.pruner``; None never prunes).
    The trial is reached through the study's storage, so this works in
    the sweeper's process and in launcher processes (parallel, SLURM) alike. ``trial_id=None`` (a run
    outside a search, or the final run of the best parameters) does nothing.
    """

    def __init__(self, monitor: str, storage: str | None, study_name: str | None, trial_id: int | None,
                 pruner: optuna.pruners.BasePruner | None = None) -> None:
        if trial_id is not None and not str(monitor).startswith("val/"):
            raise ConfigError(f"callbacks.optuna_pruning.monitor={monitor!r}: pruning must watch a validation "
                             f"metric (val/...), never the test split; set optimized_metric=val/acc")
        self.monitor = monitor
        self.trial = (_trial(storage, study_name, trial_id, pruner)
                      if trial_id is not None and storage and study_name else None)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise ConfigError(f"callbacks.optuna_pruning.monitor={self.monitor!r} was not logged; logged metrics: "
                           f"{', '.join(sorted(trainer.callback_metrics))} (is data.val_ratio > 0?)")
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.monitor}={float(value):.4f}")
