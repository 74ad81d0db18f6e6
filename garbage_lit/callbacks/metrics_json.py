"""The callback that keeps a run's ``metrics.json`` up to date: per-epoch history, final results, provenance."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.records.folder import METRICS_FILE, TEST, TRAIN, VAL, read_metrics


def _clean(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


class MetricsJson(pl.Callback):
    """Records every finished epoch once (its state is checkpointed, so resumed runs stay exact)."""

    def __init__(self, output_dir: str | Path, filename: str = METRICS_FILE, resuming: bool = False) -> None:
        """``resuming``: start from the epochs the folder's metrics.json already records (each was written when
        its epoch ended), so a checkpoint saved before an epoch's end hooks ran loses none of them, and keep its
        record of the earlier attempts."""
        self.path = Path(output_dir) / filename
        recorded = (read_metrics(output_dir) or {}) if resuming else {}
        self.epochs: list[dict[str, Any]] = recorded.get("epochs", [])
        self.info: dict[str, Any] = {"earlier_attempts": recorded.get("earlier_attempts", [])}
        self._epoch_started = 0.0

    # state carried by checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the history from a checkpoint when resuming; keep ours when ``trainer.test`` loads an earlier one.

        (Testing the best checkpoint of a run with a validation split restores callback state too: it would
        otherwise drop every epoch after the best one from metrics.json.)
        """
        if not self.epochs:
            self.epochs = list(state_dict.get("epochs", []))

    # hooks ------------------------------------------------------------------------------------
    def update(self, **info: Any) -> None:
        """Add run-level facts (config, provenance, test results, status) and rewrite the file."""
        self.info.update(info)
        self._write()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A run resumed from a checkpoint saved mid-epoch continues that epoch without on_train_epoch_start.
        self._epoch_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch}
        for key, value in sorted(trainer.callback_metrics.items()):
            split, _, name = key.partition("/")
            if name and split in (TRAIN, VAL, TEST):
                row[key] = _clean(float(value))
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        row["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        self.epochs = [e for e in self.epochs if e["epoch"] < row["epoch"]] + [row]
        self._write()

    @rank_zero_only
    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        seconds = [e["seconds"] for e in self.epochs]
        payload = {**self.info, "epochs": self.epochs,
                   "seconds_per_epoch": round(sum(seconds) / len(seconds), 3) if seconds else None}
        write_json_atomic(self.path, payload)
