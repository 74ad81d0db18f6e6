"""The final test's per-image outputs: collected once, handed to callbacks that keep them (predictions, pictures)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from garbage_lit.data.samples import relative_file
from garbage_lit.records.folder import PREDICTIONS_FILE
from garbage_lit.records.predictions import write_predictions

log = logging.getLogger(__name__)


class TestOutputs(pl.Callback):
    """Collects the final ``trainer.test``'s scores (what ``test_step`` returns) and hands them, with the data module's
    test samples in loader order, to :meth:`on_test_outputs` on rank 0.

    Under DDP every rank's share is gathered first.
    """

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._scores: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._scores = []

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(outputs, torch.Tensor):
            self._scores.append(outputs.detach())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        samples = getattr(trainer.datamodule, "splits", {}).get("test")
        if not self._scores or samples is None:
            log.warning("%s: nothing written: the test ran without the data module's test split", type(self).__name__)
            return
        scores = torch.cat(self._scores)
        if trainer.world_size > 1:
            # DistributedSampler (no shuffling) deals image i to rank i % world_size, padding the last round.
            scores = pl_module.all_gather(scores).transpose(0, 1).reshape(-1, scores.shape[-1])
        if trainer.is_global_zero:
            # Fewer rows than samples when the test was cut short (limit_test_batches, fast_dev_run): the first ones.
            count = min(len(scores), len(samples))
            self.on_test_outputs(trainer, pl_module, scores[:count].float().cpu(), samples[:count])

    def on_test_outputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, scores: torch.Tensor,
                        samples: list) -> None:
        """What to do with the test images' scores (row i belongs to ``samples[i]``)."""
        raise NotImplementedError


class TestPredictions(TestOutputs):
    """Writes the final ``trainer.test``'s prediction for every test image: file, label, predicted, probability
    (the model's calibrated probability when it has a temperature)."""

    def __init__(self, output_dir: str | Path, filename: str = PREDICTIONS_FILE) -> None:
        super().__init__()
        self.path = Path(output_dir) / filename

    def on_test_outputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, scores: torch.Tensor,
                        samples: list) -> None:
        confidence, predicted = pl_module.probabilities(scores).max(dim=1)
        names = pl_module.class_names
        write_predictions(self.path, [relative_file(s.path, trainer.datamodule.root) for s in samples],
                          [names[s.label] for s in samples], [names[p] for p in predicted.tolist()],
                          confidence.tolist())
