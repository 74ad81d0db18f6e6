"""The confusion-matrix figure shared by training (TensorBoard) and ``evaluate``.

Figures are built with Matplotlib's object-oriented API (``matplotlib.figure.Figure``), so nothing
here selects a backend or changes global rcParams: importing this module has no side effects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC")


def tick_labels(class_names: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Tick labels and the font family that can draw them.

    Non-ASCII names (e.g. Chinese) get an installed CJK font; without one, class ids stand in for them.
    """
    if all(name.isascii() for name in class_names):
        return list(class_names), None
    installed = {font.name for font in font_manager.fontManager.ttflist}
    available = [name for name in CJK_FONTS if name in installed]
    if available:
        return list(class_names), [*available, "sans-serif"]
    return [str(i) for i in range(len(class_names))], None


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with counts in each cell."""
    counts = np.asarray(matrix)
    size = max(4.0, 0.35 * len(class_names) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    ticks = np.arange(len(class_names))
    labels, family = tick_labels(class_names)
    font = {"fontfamily": family} if family else {}
    axes.set_xticks(ticks, labels=labels, rotation=90, fontsize=7, **font)
    axes.set_yticks(ticks, labels=labels, fontsize=7, **font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 20:
        for (row, col), value in np.ndenumerate(counts):
            if value:
                axes.text(col, row, str(value), ha="center", va="center", fontsize=7,
                          color="white" if value > counts.max() / 2 else "black")
    figure.tight_layout()
    return figure
