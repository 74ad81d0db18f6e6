"""Figures of a whole sweep: learning curves per configuration and the final accuracy comparison."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.ticker import MaxNLocator

from garbage_lit.plots import plt  # the shared Agg backend set-up
from garbage_lit.sweeps.tables import Configuration, mean_std


def learning_curves_figure(configs: Sequence[Configuration]) -> plt.Figure:
    """Loss and accuracy per epoch (seed mean): solid lines test, dashed lines train, one colour per configuration."""
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab20")
    for i, config in enumerate(c for c in configs if c.completed):
        colour = colours(i % 20)
        epochs = list(range(config.num_epochs))
        for split, style in (("train", "--"), ("test", "-")):
            for axes, metric in ((loss_axes, "loss"), (acc_axes, "acc")):
                means = [mean_std(config.epoch_values(e, f"{split}_{metric}"))[0] for e in epochs]
                points = [(e, m) for e, m in zip(epochs, means) if m is not None]
                if points:
                    axes.plot(*zip(*points), style, color=colour, marker="o", markersize=3,
                              label=config.label if split == "test" and metric == "acc" else None)
    for axes, title in ((loss_axes, "loss"), (acc_axes, "accuracy")):
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(f"{title} (solid: test, dashed: train)")
        axes.grid(alpha=0.3)
    if acc_axes.get_legend_handles_labels()[0]:
        acc_axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    return figure


def accuracy_comparison_figure(configs: Sequence[Configuration]) -> plt.Figure:
    """Final test accuracy per configuration (mean, error bar: std over seeds), best at the top."""
    scored = []
    for config in configs:
        mean, std, n = mean_std(config.final("acc"))
        scored.append((config.label, mean, std or 0.0, n))
    scored.sort(key=lambda s: (s[1] is None, -(s[1] or 0.0)), reverse=True)
    figure, axes = plt.subplots(figsize=(8, max(2.5, 0.35 * len(scored) + 1)))
    labels = [f"{label} (n={n})" if mean is not None else f"{label} (no result)" for label, mean, _, n in scored]
    axes.barh(range(len(scored)), [s[1] or 0.0 for s in scored], xerr=[s[2] for s in scored],
              color=["tab:blue" if s[1] is not None else "lightgrey" for s in scored], capsize=3)
    axes.set_yticks(range(len(scored)), labels=labels, fontsize=7)
    axes.set_xlim(0, 1)
    axes.set_xlabel("final test accuracy")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
