"""Accuracy against coverage: what ``predict threshold=t`` trades when it answers "unsure" below confidence ``t``.

Coverage is the share of photos the model still answers (its top probability is at least ``t``); accuracy is
measured on those. For a sorting bin the unsure photos go to a person, so the curve shows how many photos a
person sees for how many mistakes avoided.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
COVERAGE_COLUMNS = ("threshold", "coverage", "accuracy", "answered", "unsure")


def coverage_table(probs: torch.Tensor, targets: torch.Tensor,
                   thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per threshold: the share of photos answered, the accuracy on them (None when none is), the counts."""
    confidence, predicted = probs.max(dim=1)
    correct = predicted == targets
    rows = []
    for threshold in thresholds:
        answered = confidence >= threshold
        count = int(answered.sum())
        rows.append({"threshold": threshold, "coverage": count / len(targets),
                     "accuracy": correct[answered].float().mean().item() if count else None,
                     "answered": count, "unsure": len(targets) - count})
    return rows


def coverage_figure(probs: torch.Tensor, targets: torch.Tensor, thresholds: Sequence[float] = THRESHOLDS) -> Figure:
    """Accuracy of the answered photos against their share, the photos answered most confidently first; the
    ``thresholds`` marked on the curve."""
    confidence, predicted = probs.max(dim=1)
    order = confidence.argsort(descending=True, stable=True)
    correct = (predicted == targets)[order].float()
    answered = torch.arange(1, len(order) + 1)
    figure = Figure(figsize=(6, 4.5))  # fixed margins: a layout engine measures every label
    axes = figure.subplots(gridspec_kw={"left": 0.11, "right": 0.97, "bottom": 0.11, "top": 0.93})
    axes.plot((answered / len(order)).numpy(), (correct.cumsum(0) / answered).numpy(), linewidth=1.5)
    for row in coverage_table(probs, targets, thresholds):
        if row["accuracy"] is not None and row["threshold"] > 0:
            axes.plot(row["coverage"], row["accuracy"], marker="o", color="black", markersize=4)
            axes.annotate(f"{row['threshold']:g}", (row["coverage"], row["accuracy"]), textcoords="offset points",
                          xytext=(4, 4), fontsize=7)
    axes.set_xlim(0, 1.02)
    axes.set_xlabel("coverage (share of photos answered; the rest are \"unsure\")")
    axes.set_ylabel("accuracy on the answered photos")
    axes.set_title("accuracy against coverage (dots: threshold=t)")
    axes.grid(alpha=0.3)
    return figure
