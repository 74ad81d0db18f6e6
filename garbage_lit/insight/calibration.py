"""The reliability diagram: accuracy against confidence per bin, a calibrated model on the diagonal, its expected
calibration error in the legend (:mod:`garbage_lit.models.calibration` computes it and fits the temperature)."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from garbage_lit.models.calibration import BINS, expected_calibration_error


def reliability_bins(probs: torch.Tensor, targets: torch.Tensor, bins: int = BINS) -> list[dict[str, float]]:
    """Per confidence bin ``[lower, upper)`` (the last one holds 1.0): its images, mean confidence and accuracy."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).float()
    edges = torch.linspace(0, 1, bins + 1)
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(max=bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append({"lower": edges[b].item(), "upper": edges[b + 1].item(), "images": count,
                     "confidence": confidence[members].mean().item() if count else float("nan"),
                     "accuracy": correct[members].mean().item() if count else float("nan")})
    return rows


def reliability_figure(curves: dict[str, tuple[torch.Tensor, torch.Tensor]], bins: int = BINS) -> Figure:
    """Accuracy against confidence per bin for each named ``(probs, targets)`` curve, ECE in the legend."""
    figure = Figure(figsize=(5, 5))  # fixed margins: a layout engine measures every label (a third of the drawing)
    axes = figure.subplots(gridspec_kw={"left": 0.13, "right": 0.97, "bottom": 0.1, "top": 0.93})
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name, (probs, targets) in curves.items():
        rows = [row for row in reliability_bins(probs, targets, bins) if row["images"]]
        ece = expected_calibration_error(probs, targets, bins)
        axes.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o",
                  label=f"{name}: ECE {ece:.3f}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (predicted class's probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"reliability ({bins} bins)")
    axes.legend(loc="upper left", fontsize=8)
    return figure
