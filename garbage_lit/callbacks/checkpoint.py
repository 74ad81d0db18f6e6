"""The checkpoints of a run: its chosen epoch (the best by validation, or the last), in a folder that may move."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

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


def _relocated(state: dict[str, Any], old_dir: str, new_dir: str) -> dict[str, Any]:
    """A ModelCheckpoint ``state`` with each path inside ``old_dir`` at the same place inside ``new_dir``."""
    def move(path: str) -> str:
        relative = os.path.relpath(path, old_dir) if path else ".."
        return path if relative.startswith("..") else os.path.join(new_dir, relative)

    paths = {key: move(state.get(key) or "") for key in ("best_model_path", "kth_best_model_path", "last_model_path")}
    return {**state, **paths, "dirpath": new_dir,
            "best_k_models": {move(path): score for path, score in (state.get("best_k_models") or {}).items()}}
