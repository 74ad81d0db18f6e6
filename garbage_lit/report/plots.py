"""Figures of a whole sweep: learning curves per configuration and the final accuracy comparison."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from garbage_lit.records.folder import ACC, LOSS, TEST, TEST_ACC, TRAIN, metric_key
from garbage_lit.report.tables import Configuration, mean_std


def learning_curves_figure(configs: Sequence[Configuration]) -> Figure:
    """Loss and accuracy per epoch (seed mean): solid lines test, dashed lines train, one colour per configuration.

    A sweep of one epoch has no curve: it gets :func:`one_epoch_figure` instead.
    """
    if max((c.num_epochs for c in configs), default=0) <= 1:
        return one_epoch_figure(configs)
    figure = Figure(figsize=(12, 4.5))
    loss_axes, acc_axes = figure.subplots(1, 2)
    colours = colormaps["tab20"]
    for i, config in enumerate(c for c in configs if c.completed):
        colour = colours(i % 20)
        epochs = list(range(config.num_epochs))
        for split, style in ((TRAIN, "--"), (TEST, "-")):
            for axes, metric in ((loss_axes, LOSS), (acc_axes, ACC)):
                means = [mean_std(config.epoch_values(e, metric_key(split, metric)))[0] for e in epochs]
                points = [(e, m) for e, m in zip(epochs, means) if m is not None]
                if points:
                    axes.plot(*zip(*points), style, color=colour, marker="o", markersize=3,
                              label=config.label if split == TEST and metric == ACC else None)
    for axes, title in ((loss_axes, "loss"), (acc_axes, "accuracy")):
        axes.set_xlabel("epoch (counted from 0)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(f"{title} (solid: test, dashed: train)")
        axes.grid(alpha=0.3)
    if acc_axes.get_legend_handles_labels()[0]:
        acc_axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    return figure


def one_epoch_figure(configs: Sequence[Configuration]) -> Figure:
    """Train and test loss and accuracy after the only epoch (seed mean), as bars per configuration."""
    done = [c for c in configs if c.completed]
    figure = Figure(figsize=(12, max(2.5, 0.45 * len(done) + 1.2)))
    loss_axes, acc_axes = figure.subplots(1, 2, sharey=True)
    rows = range(len(done))
    for axes, metric in ((loss_axes, LOSS), (acc_axes, ACC)):
        for offset, split, colour in ((-0.2, TRAIN, "tab:orange"), (0.2, TEST, "tab:blue")):
            means = [mean_std(c.epoch_values(0, metric_key(split, metric)))[0] for c in done]
            axes.barh([r + offset for r in rows], [m or 0.0 for m in means], height=0.4, color=colour, label=split)
        axes.set_title(f"{'loss' if metric == LOSS else 'accuracy'} after the sweep's only epoch (epoch 0)")
        axes.grid(axis="x", alpha=0.3)
    acc_axes.set_xlim(0, 1)
    loss_axes.set_yticks(list(rows), labels=[c.label for c in done], fontsize=7)
    loss_axes.invert_yaxis()
    acc_axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def accuracy_comparison_figure(configs: Sequence[Configuration]) -> Figure:
    """Final test accuracy per configuration (mean, error bar: std over seeds), best at the top."""
    scored = []
    for config in configs:
        mean, std, n = mean_std(config.final(TEST_ACC))
        scored.append((config.label, mean, std or 0.0, n))
    scored.sort(key=lambda s: (s[1] is None, -(s[1] or 0.0)), reverse=True)
    figure = Figure(figsize=(8, max(2.5, 0.35 * len(scored) + 1)))
    axes = figure.subplots()
    labels = [f"{label} (n={n})" if mean is not None else f"{label} (no result)" for label, mean, _, n in scored]
    axes.barh(range(len(scored)), [s[1] or 0.0 for s in scored], xerr=[s[2] for s in scored],
              color=["tab:blue" if s[1] is not None else "lightgrey" for s in scored], capsize=3)
    axes.set_yticks(range(len(scored)), labels=labels, fontsize=7)
    axes.set_xlim(0, 1)
    axes.set_xlabel("final test accuracy")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
