"""The final test's pictures: the mistakes gallery, the reliability diagram and accuracy against coverage."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from garbage_lit.callbacks.test_predictions import TestOutputs
from garbage_lit.insight.coverage import COVERAGE_COLUMNS, coverage_table
from garbage_lit.insight.figures import insight_pictures
from garbage_lit.loggers.base import log_png
from garbage_lit.records.folder import COVERAGE_TABLE, TEST, metric_key
from garbage_lit.records.tables import write_csv


class FinalTestInsight(TestOutputs):
    """After the final test, writes ``gallery.png`` (the ``gallery_size`` most confident mistakes and least confident
    correct answers), ``reliability.png``, ``coverage.png`` and ``coverage.csv`` into the run folder, and gives the
    pictures to every logger (TensorBoard: ``test/gallery``, ``test/reliability``, ``test/coverage``)."""

    def __init__(self, output_dir: str | Path, gallery_size: int = 12) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.gallery_size = gallery_size

    def on_test_outputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, scores: torch.Tensor,
                        samples: list) -> None:
        probs = pl_module.probabilities(scores)
        targets = torch.tensor([s.label for s in samples])
        pictures = insight_pictures(scores, probs, targets, [s.path for s in samples], pl_module.class_names,
                                    pl_module.class_bins, pl_module.temperature, self.gallery_size, TEST)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_csv(self.output_dir / COVERAGE_TABLE, coverage_table(probs, targets), COVERAGE_COLUMNS)
        for file, png in pictures.items():
            (self.output_dir / file).write_bytes(png)
            log_png(trainer.loggers, metric_key(TEST, Path(file).stem), png, trainer.global_step)
