"""Per-image test predictions in the run folder (``test_predictions.csv``), so a report can pair jobs image by image."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from garbage_lit.run.folder import PREDICTION_COLUMNS, PREDICTIONS_FILE

log = logging.getLogger(__name__)


class TestOutputs(pl.Callback):
    """Collects the final ``trainer.test``'s logits (what ``test_step`` returns) and hands them, with the data module's
    test samples in loader order, to :meth:`on_test_outputs` on rank 0.

    Under DDP every rank's share is gathered first.
    """

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._logits: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._logits = []

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(outputs, torch.Tensor):
            self._logits.append(outputs.detach())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        samples = getattr(trainer.datamodule, "splits", {}).get("test")
        if not self._logits or samples is None:
            log.warning("%s: nothing written: the test ran without the data module's test split", type(self).__name__)
            return
        logits = torch.cat(self._logits)
        if trainer.world_size > 1:
            # DistributedSampler (no shuffling) deals image i to rank i % world_size, padding the last round.
            logits = pl_module.all_gather(logits).transpose(0, 1).reshape(-1, logits.shape[-1])
        if trainer.is_global_zero:
            # Fewer rows than samples when the test was cut short (limit_test_batches, fast_dev_run): the first ones.
            count = min(len(logits), len(samples))
            self.on_test_outputs(trainer, pl_module, logits[:count].float().cpu(), samples[:count])

    def on_test_outputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, logits: torch.Tensor,
                        samples: list) -> None:
        """What to do with the test images' logits (row i belongs to ``samples[i]``)."""
        raise NotImplementedError


class TestPredictions(TestOutputs):
    """Writes the final ``trainer.test``'s prediction for every test image: file, label, predicted, probability
    (the model's calibrated probability when it has a temperature)."""

    def __init__(self, output_dir: str | Path, filename: str = PREDICTIONS_FILE) -> None:
        super().__init__()
        self.path = Path(output_dir) / filename

    def on_test_outputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, logits: torch.Tensor,
                        samples: list) -> None:
        write_predictions(self.path, pl_module.probabilities(logits), [s.path for s in samples],
                          [s.label for s in samples], trainer.datamodule.root, pl_module.class_names)


def write_predictions(path: Path, probs: torch.Tensor, files: list[Path], labels: list[int], root: Path,
                      class_names: list[str]) -> None:
    """One CSV row per image: its file relative to ``root``, true class, predicted class, its probability."""
    confidence, predicted = probs.max(dim=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for file, label, pred, prob in zip(files, labels, predicted.tolist(), confidence.tolist()):
            writer.writerow([Path(file).relative_to(root).as_posix(), class_names[label], class_names[pred],
                             f"{prob:.6f}"])


def read_predictions(run_dir: str | Path) -> dict[str, bool] | None:
    """Whether each test image (by file) was predicted right, from the run's predictions file; None when absent."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["file"]: row["label"] == row["predicted"] for row in csv.DictReader(handle)}
