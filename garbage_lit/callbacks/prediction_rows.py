"""predict's rows: each predicted batch turned into rows of file, status, decision and top-k classes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from garbage_lit.data.datasets import UnlabelledImages
from garbage_lit.data.groups import garbage_group

UNSURE = "unsure"  # the decision below the threshold
PREDICTED, SKIPPED, FAILED = "predicted", "skipped", "failed"  # a row's status


class TopKRows(BasePredictionWriter):
    """Turns each predicted batch into rows (file, status, error, decision, top-k classes with probabilities and
    groups). The decision is the top class, or ``unsure`` when its probability is below ``threshold``."""

    def __init__(self, dataset: UnlabelledImages, class_names: Sequence[str], top_k: int,
                 threshold: float | None = None) -> None:
        super().__init__(write_interval="batch")
        self.dataset = dataset
        self.class_names = list(class_names)
        self.top_k = min(top_k, len(class_names))
        self.threshold = threshold
        self.rows: list[dict[str, Any]] = []

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: torch.Tensor,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        _, indices, errors = batch
        top = pl_module.probabilities(prediction).topk(self.top_k, dim=1)
        for index, error, probs, classes in zip(indices.tolist(), errors, top.values.tolist(), top.indices.tolist()):
            row = prediction_row(self.dataset.inputs[index].path, FAILED if error else PREDICTED, error)
            if not error:
                row["top"] = [self._describe(c, p) for c, p in zip(classes, probs)]
                unsure = self.threshold is not None and probs[0] < self.threshold
                row["decision"] = UNSURE if unsure else self.class_names[classes[0]]
            self.rows.append(row)

    def _describe(self, class_index: int, probability: float) -> dict[str, Any]:
        name = self.class_names[class_index]
        group = garbage_group(name)
        return {"class": name, "probability": probability,
                **({"group_zh": group[0], "group_en": group[1]} if group else {})}


def prediction_row(path: Path, status: str, error: str = "") -> dict[str, Any]:
    """One row of predictions.csv / .json; ``decision`` and ``top`` are filled for a predicted file."""
    return {"file": str(path), "status": status, "error": error, "decision": "", "top": []}
