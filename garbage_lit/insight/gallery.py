"""A gallery of photos with what they are and what the model said: the most confident mistakes, the least
confident correct answers (fastai's ``plot_top_losses`` idea), or the audit's suspected labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from garbage_lit.data.images import load_rgb
from garbage_lit.plots import tick_labels

COLUMNS = 6          # tiles per row
TILE_INCHES = 2.2    # width of one tile
THUMBNAIL_PX = 256   # longest side a photo is shrunk to before drawing


@dataclass(frozen=True)
class Tile:
    """One photo and its caption; ``picture`` (H, W, 3 floats in [0, 1]) replaces the photo, e.g. a Grad-CAM overlay."""

    path: Path
    caption: str
    picture: np.ndarray | None = None


def most_confident_mistakes(probs: torch.Tensor, targets: torch.Tensor, count: int) -> list[int]:
    """Indices of the ``count`` wrong predictions with the highest predicted probability, most confident first."""
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != targets).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True, stable=True)
    return wrong[order][:count].tolist()


def least_confident_correct(probs: torch.Tensor, targets: torch.Tensor, count: int) -> list[int]:
    """Indices of the ``count`` right predictions with the lowest predicted probability, least confident first."""
    confidence, predicted = probs.max(dim=1)
    right = (predicted == targets).nonzero().flatten()
    order = confidence[right].argsort(stable=True)
    return right[order][:count].tolist()


def class_caption(prefix: str, name: str, bin_name: str | None = None) -> str:
    """``true glass [recyclable]``: a class name with its waste bin when the classes have bins."""
    return f"{prefix} {name}" + (f" [{bin_name}]" if bin_name else "")


def prediction_tiles(indices: Sequence[int], probs: torch.Tensor, targets: torch.Tensor, paths: Sequence[Path],
                     class_names: Sequence[str], bins: Sequence[str] | None = None,
                     pictures: dict[int, np.ndarray] | None = None) -> list[Tile]:
    """A tile per index: the photo, its true class, the predicted class and its probability (and their bins)."""
    names, _ = tick_labels(class_names)  # class ids stand in for names no installed font can draw
    tiles = []
    for index in indices:
        true, pred = int(targets[index]), int(probs[index].argmax())
        caption = "\n".join([class_caption("true", names[true], bins[true] if bins else None),
                             class_caption("predicted", names[pred], bins[pred] if bins else None),
                             f"p = {probs[index, pred]:.3f}"])
        tiles.append(Tile(Path(paths[index]), caption, (pictures or {}).get(index)))
    return tiles


def mistakes_gallery(probs: torch.Tensor, targets: torch.Tensor, paths: Sequence[Path], class_names: Sequence[str],
                     count: int, bins: Sequence[str] | None = None,
                     pictures: dict[int, np.ndarray] | None = None) -> Figure:
    """The ``count`` most confident mistakes above the ``count`` least confident correct answers."""
    sections = [("most confident mistakes", most_confident_mistakes(probs, targets, count)),
                ("least confident correct answers", least_confident_correct(probs, targets, count))]
    return gallery_figure([(title, prediction_tiles(indices, probs, targets, paths, class_names, bins, pictures))
                           for title, indices in sections], class_names)


def gallery_indices(probs: torch.Tensor, targets: torch.Tensor, count: int) -> list[int]:
    """Every index :func:`mistakes_gallery` shows (e.g. to compute Grad-CAM overlays for just those photos)."""
    return most_confident_mistakes(probs, targets, count) + least_confident_correct(probs, targets, count)


def gallery_figure(sections: Sequence[tuple[str, Sequence[Tile]]], class_names: Sequence[str] = (),
                   columns: int = COLUMNS) -> Figure:
    """One titled block of tiles per section, ``columns`` to a row; an empty section says so."""
    rows = [max(1, -(-len(tiles) // columns)) for _, tiles in sections]
    # Fixed margins, not a layout engine: constrained layout measured every caption and took half the drawing time.
    figure = Figure(figsize=(columns * TILE_INCHES, sum(rows) * TILE_INCHES * 1.25 + 0.5 * len(sections)))
    _, family = tick_labels(class_names)
    font = {"fontfamily": family} if family else {}
    blocks = figure.subfigures(len(sections), 1, height_ratios=rows, squeeze=False)[:, 0]
    for block, (title, tiles), nrows in zip(blocks, sections, rows):
        block.suptitle(f"{title} ({len(tiles)})", fontsize=11, fontweight="bold")
        top = 1 - 0.5 / (nrows * TILE_INCHES * 1.25 + 0.5)  # room for the block's title
        axes = block.subplots(nrows, columns, squeeze=False, gridspec_kw={
            "left": 0.01, "right": 0.99, "bottom": 0.01, "top": top, "wspace": 0.06, "hspace": 0.3}).flatten()
        for ax in axes:
            ax.set_axis_off()
        if not tiles:
            axes[0].text(0, 0.5, "none", fontsize=10, transform=axes[0].transAxes)
        for ax, tile in zip(axes, tiles):
            ax.imshow(tile.picture if tile.picture is not None else thumbnail(tile.path))
            ax.set_title(tile.caption, fontsize=7, loc="left", **font)
    return figure


def thumbnail(path: Path, size: int = THUMBNAIL_PX) -> np.ndarray:
    """The photo as a person sees it (EXIF orientation applied), its longest side at most ``size`` pixels."""
    image = load_rgb(path, draft_size=size)
    image.thumbnail((size, size))
    return np.asarray(image)
