"""The checkpoints of a run: its chosen epoch (the best by validation, or the last), in a folder that may move."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from garbage_lit.records.folder import VAL

log = logging.getLogger(__name__)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, choosing by a validation metric only when the data has a validation split.

    Without one (``data.val_ratio=0``) choosing an epoch by a test metric would leak the test set, so the
    last epoch is kept; ``last.ckpt`` then links to it (``save_last="link"``) instead of writing the same
    state twice an epoch. Paths restored from a checkpoint are re-anchored to this run's ``dirpath``, so a
    run folder moved or copied elsewhere resumes into itself.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Saves at the end of every epoch and at no other time (the only case last.ckpt can link to the kept epoch).
        self.end_of_epoch_only = self.every_n_epochs == 1 and not kwargs.get("every_n_train_steps") \
            and not kwargs.get("train_time_interval")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        has_val = VAL in getattr(trainer.datamodule, "eval_splits", ())
        if self.monitor and self.monitor.startswith(f"{VAL}/") and not has_val:
            log.info("no validation split (data.val_ratio=0): the last epoch is kept, not the best %s", self.monitor)
            self.monitor = None
        if self.monitor is None and self.save_last is True and self.save_top_k == 1 and self.end_of_epoch_only:
            self.save_last = "link"
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Step- and time-triggered saves skip an epoch's last batch: the epoch's own checkpoint follows it, and
        Lightning resuming from that batch skips the epoch's validation and the next ``on_train_epoch_start``."""
        if not is_last_batch(trainer, batch_idx):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_anyway(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_anyway(trainer)

    def _save_last_anyway(self, trainer: pl.Trainer) -> None:
        """``last.ckpt`` at every epoch's save point, also when the epoch is not kept (Lightning writes it only with
        a kept one), so a resume starts from the newest epoch, not the best."""
        if self.save_last is True and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's own key, so a checkpoint written by either class resumes with the other."""
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state with its paths moved to this ``dirpath`` (Lightning keeps the saved absolute
        ``best_model_path`` when the folder moved, and forgets the best score and the kept files)."""
        saved_dir = state_dict.get("dirpath")
        if saved_dir and self.dirpath and saved_dir != self.dirpath:
            state_dict = _relocated(state_dict, saved_dir, self.dirpath)
        super().load_state_dict(state_dict)


class StopCheckpoint(pl.Callback):
    """Writes ``stop.ckpt`` when a SIGTERM stops the run. Lightning stops at the next batch boundary (after that
    batch's validation, if due), so a resumed run continues from the step it stopped at, not from the last periodic
    checkpoint. Other exceptions save nothing: they may stop a step half done."""

    def __init__(self, dirpath: str, filename: str = "stop") -> None:
        self.path = os.path.join(dirpath, f"{filename}.ckpt")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING \
                and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)
            log.info("stopped by SIGTERM: %s holds the run at step %d", self.path, trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and os.path.exists(self.path):
            os.remove(self.path)  # training finished: the epoch checkpoints say the rest


def is_last_batch(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether ``batch_idx`` is the epoch's last training batch."""
    return batch_idx + 1 >= trainer.num_training_batches


def _relocated(state: dict[str, Any], old_dir: str, new_dir: str) -> dict[str, Any]:
    """A ModelCheckpoint ``state`` with each path inside ``old_dir`` at the same place inside ``new_dir``."""
    def move(path: str) -> str:
        relative = os.path.relpath(path, old_dir) if path else ".."
        return path if relative.startswith("..") else os.path.join(new_dir, relative)

    paths = {key: move(state.get(key) or "") for key in ("best_model_path", "kth_best_model_path", "last_model_path")}
    return {**state, **paths, "dirpath": new_dir,
            "best_k_models": {move(path): score for path, score in (state.get("best_k_models") or {}).items()}}
