"""The confusion-matrix figure of a run's final test (every tracker) and of ``evaluate``.

Figures are built with Matplotlib's object-oriented API (``matplotlib.figure.Figure``), so nothing here selects a
backend or changes global rcParams: importing this module has no side effects.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from garbage_lit.insight.fonts import class_labels, missing_glyphs_note


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                     shown: Sequence[int] | None = None) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with counts in each cell.

    ``class_names`` are the model's classes; ``matrix`` covers those numbered ``shown`` (default: all of them, in
    order), e.g. only the classes a data subset holds. Classes are named when the installed fonts draw their names,
    else numbered by their index among the model's classes, with a legend.
    """
    counts = np.asarray(matrix)
    shown = list(range(len(class_names))) if shown is None else list(shown)
    names = class_labels(class_names)
    legend = [names.legend[i] for i in shown] if names.legend else []
    size = max(4.0, 0.35 * len(shown) + 2)
    room = 3.0 if legend else 0.0  # inches beside the matrix for the legend
    figure = Figure(figsize=(size + room, size))
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    ticks = np.arange(len(shown))
    labels = [names.of(i) for i in shown]
    axes.set_xticks(ticks, labels=labels, rotation=90, fontsize=7, fontfamily=names.family)
    axes.set_yticks(ticks, labels=labels, fontsize=7, fontfamily=names.family)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(shown) <= 20:
        for (row, col), value in np.ndenumerate(counts):
            if value:
                axes.text(col, row, str(value), ha="center", va="center", fontsize=7,
                          color="white" if value > counts.max() / 2 else "black")
    figure.tight_layout(rect=(0, 0, size / (size + room), 1))
    if legend:
        figure.text(size / (size + room) + 0.01, 0.95, "\n".join([*legend, "", *_wrapped(missing_glyphs_note())]),
                    ha="left", va="top", fontsize=6)
    return figure


def _wrapped(text: str, width: int = 45) -> list[str]:
    return textwrap.wrap(text, width)
