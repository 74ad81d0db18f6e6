"""Matplotlib figures shared by training (TensorBoard) and the reports."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
import numpy as np  # noqa: E402


CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC")


def tick_labels(class_names: Sequence[str]) -> list[str]:
    """Class names as tick labels; class ids when they need glyphs (e.g. Chinese) no installed font has."""
    if all(name.isascii() for name in class_names):
        return list(class_names)
    installed = {font.name for font in font_manager.fontManager.ttflist}
    available = [name for name in CJK_FONTS if name in installed]
    if available:
        current = list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.sans-serif"] = [*(f for f in available if f not in current), *current]
        return list(class_names)
    return [str(i) for i in range(len(class_names))]


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> plt.Figure:
    """A confusion matrix (rows: true class, columns: predicted) with counts in each cell."""
    counts = np.asarray(matrix)
    size = max(4.0, 0.35 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(counts, cmap="Blues")
    ticks = np.arange(len(class_names))
    labels = tick_labels(class_names)
    axes.set_xticks(ticks, labels=labels, rotation=90, fontsize=7)
    axes.set_yticks(ticks, labels=labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 20:
        for (row, col), value in np.ndenumerate(counts):
            if value:
                axes.text(col, row, str(value), ha="center", va="center", fontsize=7,
                          color="white" if value > counts.max() / 2 else "black")
    figure.tight_layout()
    return figure
