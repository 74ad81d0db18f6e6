"""How a trained classifier is used: class probabilities averaged over a horizontal flip (test-time augmentation)
and over several models (an ensemble). One definition for the run's final test, evaluate, predict and the export.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn


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
    the flip, averaged (one model is an ensemble of one). ``predict_step`` gives the probabilities.

    ``hparams.preprocessing`` is the test-time preprocessing every model takes, ``class_names`` and ``class_bins``
    their shared classes.
    """

    def __init__(self, models: Sequence[pl.LightningModule], preprocessing: dict, flip_tta: bool) -> None:
        super().__init__()
        self.save_hyperparameters({"preprocessing": dict(preprocessing), "flip_tta": flip_tta})
        self.models = nn.ModuleList(models)
        self.class_names: list[str] = list(models[0].class_names)
        self.class_bins: list[str] | None = models[0].class_bins

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return averaged_log_probabilities(list(self.models), images, self.hparams.flip_tta)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities for the images of ``batch`` (a tensor, or a tuple/list starting with one)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).exp()
