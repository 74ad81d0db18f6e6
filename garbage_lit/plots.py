"""Matplotlib figures shared by training (TensorBoard) and the reports."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> plt.Figure:
    """A confusion matrix (rows: true class, columns: predicted) with counts in each cell."""
    counts = np.asarray(matrix)
    size = max(4.0, 0.35 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(counts, cmap="Blues")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names, rotation=90, fontsize=7)
    axes.set_yticks(ticks, labels=class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 20:
        for (row, col), value in np.ndenumerate(counts):
            if value:
                axes.text(col, row, str(value), ha="center", va="center", fontsize=7,
                          color="white" if value > counts.max() / 2 else "black")
    figure.tight_layout()
    return figure
