"""Calibration of a classifier's probabilities: the expected calibration error, and temperature scaling to fix it.

* Expected calibration error (ECE): torchmetrics' ``multiclass_calibration_error`` over 15 equal-width
  confidence bins (Guo et al. 2017): the average gap between how sure the model is and how often it is right.
* Temperature scaling: one number ``T`` fitted on the validation split's scores by minimising the negative log
  likelihood; probabilities become ``softmax(scores / T)``. It never changes which class is predicted.

The reliability diagram that shows both is :mod:`garbage_lit.insight.calibration`'s.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_calibration_error

from garbage_lit.records.folder import ECE, ECE_RAW, TEMPERATURE, VAL, metric_key

log = logging.getLogger(__name__)

BINS = 15                       # confidence bins of the ECE and the reliability diagram
TEMPERATURE_RANGE = (0.05, 20.0)  # a fitted temperature is kept within these bounds


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, bins: int = BINS) -> float:
    """ECE of ``probs`` (N, C) against ``targets`` (N,): the bin-weighted mean |accuracy - confidence|."""
    return multiclass_calibration_error(probs, targets, probs.shape[1], n_bins=bins, norm="l1").item()


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature ``T`` minimising the negative log likelihood of ``softmax(logits / T)`` (L-BFGS on log T)."""
    logits, targets = logits.detach().double().cpu(), targets.cpu()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(*TEMPERATURE_RANGE))


def calibrated(logits: torch.Tensor, temperature: float | None) -> torch.Tensor:
    """Class probabilities ``softmax(logits / temperature)``; a plain softmax without a temperature."""
    return (logits / (temperature or 1.0)).softmax(dim=-1)


def split_scores(model: pl.LightningModule, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's scores (``predict_step``: logits, or flip-averaged log probabilities) and the labels of every batch
    of ``loader`` (in eval mode, without autograd), on the CPU: what its temperature will divide."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores, targets = [], []
    try:
        with torch.inference_mode():
            for batch_idx, (inputs, labels) in enumerate(loader):
                scores.append(model.predict_step(inputs.to(device), batch_idx).float().cpu())
                targets.append(labels.cpu())
    finally:
        model.train(was_training)
    return torch.cat(scores), torch.cat(targets)


def fit_on_validation(model: pl.LightningModule, data: pl.LightningDataModule) -> dict[str, Any]:
    """Fit ``model.temperature`` on ``data``'s validation split; return it with the split's ECE before and after.

    Without a validation split (``data.val_ratio=0``) no temperature is fitted (``temperature: None``): fitting it
    on the test split would tune on the test set.
    """
    if VAL not in data.eval_splits:
        log.info("no temperature scaling: the run has no validation split to fit it on (data.val_ratio=0); "
                 "probabilities stay the plain softmax")
        model.temperature = None
        return {TEMPERATURE: None}
    logits, targets = split_scores(model, data.val_dataloader()[data.eval_splits.index(VAL)])
    model.temperature = fit_temperature(logits, targets)
    metrics = calibration_metrics(logits, targets, model.temperature, VAL)
    log.info("temperature scaling: T = %.3f fitted on %d validation images; validation ECE %.4f -> %.4f",
             model.temperature, len(targets), metrics[metric_key(VAL, ECE_RAW)], metrics[metric_key(VAL, ECE)])
    return metrics


def calibration_metrics(logits: torch.Tensor, targets: torch.Tensor, temperature: float | None,
                        split: str) -> dict[str, Any]:
    """``<split>/ece`` of the model's probabilities, ``<split>/ece_raw`` (the plain softmax's) when it has a
    ``temperature``, and the temperature itself."""
    metrics = {TEMPERATURE: temperature,
               metric_key(split, ECE): expected_calibration_error(calibrated(logits, temperature), targets)}
    if temperature is not None:
        metrics[metric_key(split, ECE_RAW)] = expected_calibration_error(calibrated(logits, None), targets)
    return metrics
