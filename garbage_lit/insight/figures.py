"""The pictures of an evaluated split (mistakes gallery, reliability diagram, accuracy against coverage), drawn by
``evaluate`` and, for a run's final test, by :class:`~garbage_lit.callbacks.final_test_insight.FinalTestInsight`:
each as PNG bytes, drawn once for the file and every logger."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from matplotlib.figure import Figure

from garbage_lit.insight.calibration import reliability_figure
from garbage_lit.insight.coverage import coverage_figure
from garbage_lit.insight.gallery import PNG_COMPRESSION, mistakes_gallery
from garbage_lit.records.folder import COVERAGE_FILE, GALLERY_FILE, RELIABILITY_FILE


def insight_pictures(logits: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor, paths: list[Path],
                     class_names: list[str], bins: list[str] | None, temperature: float | None, gallery_size: int,
                     split: str, overlays: dict | None = None) -> dict[str, bytes]:
    """The gallery, reliability (after and before temperature scaling, when fitted) and coverage pictures of one
    evaluated split as PNGs, by the file each is saved as: what the final test and ``evaluate`` both draw."""
    curves = {f"{split}, temperature {temperature:.2f}": (probs, targets)} if temperature is not None else {}
    curves[f"{split}, softmax" + (" (before scaling)" if temperature is not None else "")] = \
        (logits.softmax(dim=-1), targets)
    return {GALLERY_FILE: mistakes_gallery(probs, targets, paths, class_names, gallery_size, bins, overlays),
            RELIABILITY_FILE: figure_png(reliability_figure(curves)),
            COVERAGE_FILE: figure_png(coverage_figure(probs, targets))}


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """``figure`` drawn once, as PNG bytes (for a file and every logger alike)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": PNG_COMPRESSION})
    return buffer.getvalue()
