"""The pictures of an evaluated split (mistakes gallery, reliability diagram, accuracy against coverage), drawn by
``evaluate`` and, for a run's final test, by :class:`FinalTestInsight`."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from garbage_lit.insight.calibration import reliability_figure
from garbage_lit.insight.coverage import COVERAGE_COLUMNS, coverage_figure, coverage_table
from garbage_lit.insight.gallery import mistakes_gallery
from garbage_lit.report.writers import write_csv
from garbage_lit.run.folder import COVERAGE_FILE, COVERAGE_TABLE, GALLERY_FILE, RELIABILITY_FILE, TEST, metric_key
from garbage_lit.run.loggers import figure_png, log_png
from garbage_lit.run.predictions import TestOutputs


class FinalTestInsight(TestOutputs):
    """After the final test, writes ``gallery.png`` (the ``gallery_size`` most confident mistakes and least confident
    correct answers), ``reliability.png``, ``coverage.png`` and ``coverage.csv`` into the run folder, and gives the
    figures to every logger (TensorBoard: ``test/gallery``, ``test/reliability``, ``test/coverage``)."""

    def __init__(self, output_dir: str | Path, gallery_size: int = 12) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.gallery_size = gallery_size

    def on_test_outputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, logits: torch.Tensor,
                        samples: list) -> None:
        probs = pl_module.probabilities(logits)
        targets = torch.tensor([s.label for s in samples])
        figures = insight_figures(logits, probs, targets, [s.path for s in samples], pl_module.class_names,
                                  pl_module.class_bins, pl_module.temperature, self.gallery_size, TEST)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_csv(self.output_dir / COVERAGE_TABLE, coverage_table(probs, targets), COVERAGE_COLUMNS)
        for file, figure in figures.items():
            png = figure_png(figure)
            (self.output_dir / file).write_bytes(png)
            for logger in trainer.loggers:
                log_png(logger, metric_key(TEST, Path(file).stem), png, trainer.global_step)


def insight_figures(logits: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor, paths: list[Path],
                    class_names: list[str], bins: list[str] | None, temperature: float | None, gallery_size: int,
                    split: str, pictures: dict | None = None) -> dict[str, Figure]:
    """The gallery, reliability (after and before temperature scaling, when fitted) and coverage figures of one
    evaluated split, by the file each is saved as: what the final test and ``evaluate`` both draw."""
    curves = {f"{split}, temperature {temperature:.2f}": (probs, targets)} if temperature is not None else {}
    curves[f"{split}, softmax" + (" (before scaling)" if temperature is not None else "")] = \
        (logits.softmax(dim=-1), targets)
    return {GALLERY_FILE: mistakes_gallery(probs, targets, paths, class_names, gallery_size, bins, pictures),
            RELIABILITY_FILE: reliability_figure(curves),
            COVERAGE_FILE: coverage_figure(probs, targets)}
