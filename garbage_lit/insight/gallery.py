"""A gallery of photos with what they are and what the model said: the most confident mistakes, the least
confident correct answers (fastai's ``plot_top_losses`` idea), or the audit's suspected labels.

The gallery is composed as one image with Pillow: each tile a thumbnail pasted and its caption drawn, a few
milliseconds a tile (a plotting library's axes per tile cost a second for 24 of them). Class names are written in the
fonts that have their glyphs, or as their numbers with a legend (:mod:`garbage_lit.insight.fonts`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from garbage_lit.data.images import load_rgb
from garbage_lit.insight.fonts import Font, class_labels, drawable, font_for, installed_fonts, missing_glyphs_note

COLUMNS = 6            # tiles per row
PHOTO_BOX = (208, 156)  # the photo's box in a tile (px): a 4:3 photo fills it
GAP = 10               # px between tiles and around the gallery
TEXT_PX = 12           # caption font size (px)
TITLE_PX = 16          # section title font size (px)
LINE_PX = 15           # caption line height (px)
CAPTION_LINES = 3
PNG_COMPRESSION = 1      # zlib level of every picture: a fifth of level 6's time, files about a third larger


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
    names = class_labels(class_names)
    tiles = []
    for index in indices:
        true, pred = int(targets[index]), int(probs[index].argmax())
        caption = "\n".join([class_caption("true", names.of(true), bins[true] if bins else None),
                             class_caption("predicted", names.of(pred), bins[pred] if bins else None),
                             f"p = {probs[index, pred]:.3f}"])
        tiles.append(Tile(Path(paths[index]), caption, (pictures or {}).get(index)))
    return tiles


def mistakes_gallery(probs: torch.Tensor, targets: torch.Tensor, paths: Sequence[Path], class_names: Sequence[str],
                     count: int, bins: Sequence[str] | None = None,
                     pictures: dict[int, np.ndarray] | None = None) -> bytes:
    """The ``count`` most confident mistakes above the ``count`` least confident correct answers, as a PNG."""
    sections = [("most confident mistakes", most_confident_mistakes(probs, targets, count)),
                ("least confident correct answers", least_confident_correct(probs, targets, count))]
    return gallery_png([(title, prediction_tiles(indices, probs, targets, paths, class_names, bins, pictures))
                        for title, indices in sections], class_names)


def gallery_indices(probs: torch.Tensor, targets: torch.Tensor, count: int) -> list[int]:
    """Every index :func:`mistakes_gallery` shows (e.g. to compute Grad-CAM overlays for just those photos)."""
    return most_confident_mistakes(probs, targets, count) + least_confident_correct(probs, targets, count)


def gallery_png(sections: Sequence[tuple[str, Sequence[Tile]]], class_names: Sequence[str] = (),
                columns: int = COLUMNS) -> bytes:
    """One titled block of tiles per section, ``columns`` to a row (an empty section says so), then the legend of
    class numbers when names could not be drawn; as PNG bytes."""
    legend = class_labels(class_names).legend or []
    tile_w, tile_h = PHOTO_BOX[0], PHOTO_BOX[1] + 4 + CAPTION_LINES * LINE_PX
    rows = [max(1, -(-len(tiles) // columns)) for _, tiles in sections]
    width = columns * (tile_w + GAP) + GAP
    legend_h = (len(legend) + 2) * LINE_PX + GAP if legend else 0
    height = sum(TITLE_PX + 2 * GAP + n * (tile_h + GAP) for n in rows) + legend_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (title, tiles), nrows in zip(sections, rows):
        write(draw, (GAP, y + GAP), f"{title} ({len(tiles)})", TITLE_PX)
        y += TITLE_PX + 2 * GAP
        if not tiles:
            write(draw, (GAP, y), "none", TEXT_PX)
        for number, tile in enumerate(tiles):
            x, top = GAP + (number % columns) * (tile_w + GAP), y + (number // columns) * (tile_h + GAP)
            photo = _photo(tile)
            canvas.paste(photo, (x + (tile_w - photo.width) // 2, top + (PHOTO_BOX[1] - photo.height) // 2))
            for line, text in enumerate(tile.caption.split("\n")[:CAPTION_LINES]):
                write(draw, (x, top + PHOTO_BOX[1] + 4 + line * LINE_PX), text, TEXT_PX, max_width=tile_w)
        y += nrows * (tile_h + GAP)
    for line, text in enumerate([*legend, missing_glyphs_note()] if legend else []):
        write(draw, (GAP, y + line * LINE_PX), text, TEXT_PX, max_width=width - 2 * GAP)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


def _photo(tile: Tile) -> Image.Image:
    """The tile's photo (or picture) shrunk to fit its box, EXIF orientation applied."""
    if tile.picture is not None:
        image = Image.fromarray((np.clip(tile.picture, 0, 1) * 255).astype(np.uint8))
    else:
        image = load_rgb(tile.path, draft_size=max(PHOTO_BOX))
    image.thumbnail(PHOTO_BOX)
    return image


def write(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, max_width: int | None = None,
          fill: str = "black") -> None:
    """Draw ``text`` at ``xy`` in the installed fonts that have its characters (a character none has is written as
    its code), cut with an ellipsis to ``max_width`` pixels."""
    x, y = xy
    text = drawable(text)
    for run, font in _runs(text):
        face = _face(font.path if font else None, size)
        if max_width is not None and x + face.getlength(run) > xy[0] + max_width:
            while run and x + face.getlength(run + "…") > xy[0] + max_width:
                run = run[:-1]
            draw.text((x, y), run + "…", font=face, fill=fill)
            return
        draw.text((x, y), run, font=face, fill=fill)
        x += face.getlength(run)


def _runs(text: str) -> list[tuple[str, Font | None]]:
    """``text`` cut into runs each drawn by one font (spaces go with the run they are in)."""
    runs: list[tuple[str, Font | None]] = []
    default = installed_fonts()[0] if installed_fonts() else None
    for character in text:
        font = default if character.isspace() else font_for(character)
        if runs and (runs[-1][1] == font or character.isspace()):
            runs[-1] = (runs[-1][0] + character, runs[-1][1])
        else:
            runs.append((character, font))
    return runs


@functools.lru_cache(maxsize=16)
def _face(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)
