"""How a trained classifier is used: class probabilities averaged over a horizontal flip (test-time augmentation)
and over several models (an ensemble). One definition for the run's final test, evaluate, predict and the export.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from garbage_lit.models.calibration import calibrated


def averaged_log_probabilities(models: Sequence[Callable[[torch.Tensor], torch.Tensor]], images: torch.Tensor,
                               flip: bool = False) -> torch.Tensor:
    """The log of the class probabilities of ``images`` averaged over ``models`` (callables giving logits) and, with
    ``flip``, over each image and its horizontal mirror; softmax or exp of the result gives those mean probabilities.

    Averaged in log space (logsumexp), so a confident model's near-zero probabilities do not underflow to -inf.
    """
    views = (images, images.flip(-1)) if flip else (images,)
    scores = [model(view).log_softmax(dim=-1) for model in models for view in views]
    if len(scores) == 1:
        return scores[0]
    return torch.stack(scores).logsumexp(dim=0) - math.log(len(scores))


class Ensemble(pl.LightningModule):
    """Classifiers (each a ``GarbageClassifier``) used as one: their class probabilities, each optionally averaged over
    the flip, averaged (one model is an ensemble of one). ``predict_step`` gives scores (the log of those
    probabilities) and :meth:`probabilities` their calibrated probabilities.

    One model keeps its own temperature (``temperature``, applied by :meth:`probabilities`, so evaluate can report
    the calibration before and after it); several are each calibrated by their own temperature before averaging.
    ``hparams.preprocessing`` is the test-time preprocessing every model takes, ``class_names`` and ``class_bins``
    their shared classes.
    """

    def __init__(self, models: Sequence[pl.LightningModule], preprocessing: dict, flip_tta: bool) -> None:
        super().__init__()
        self.save_hyperparameters({"preprocessing": dict(preprocessing), "flip_tta": flip_tta})
        self.models = nn.ModuleList(models)
        self.class_names: list[str] = list(models[0].class_names)
        self.class_bins: list[str] | None = models[0].class_bins

    @property
    def temperature(self) -> float | None:
        """The one model's fitted temperature; None for several (each is calibrated inside :meth:`forward`)."""
        return self.models[0].temperature if len(self.models) == 1 else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if len(self.models) == 1:
            return averaged_log_probabilities(list(self.models), images, self.hparams.flip_tta)
        members = [partial(_calibrated_logits, model) for model in self.models]
        return averaged_log_probabilities(members, images, self.hparams.flip_tta)

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """Class probabilities of :meth:`forward`'s scores: ``softmax(scores / temperature)``."""
        return calibrated(scores, self.temperature)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Scores for the images of ``batch`` (a tensor, or a tuple/list starting with one)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images)


def _calibrated_logits(model: pl.LightningModule, images: torch.Tensor) -> torch.Tensor:
    return model(images) / (model.temperature or 1.0)
