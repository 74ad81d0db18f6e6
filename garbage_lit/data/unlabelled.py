"""Unlabelled images for prediction: files and folders in, one row per image out, failures kept as rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from garbage_lit.data.images import load_rgb
from garbage_lit.data.scan import is_image_file


@dataclass(frozen=True)
class Input:
    """One image to predict, or an input that yields none (``error`` says why)."""

    path: Path
    error: str = ""


def collect_inputs(inputs: Sequence[str | Path]) -> list[Input]:
    """Files as given (whatever their extension) and the images under folders (recursively, sorted)."""
    found: list[Input] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if is_image_file(p))
            found += [Input(p) for p in images] or [Input(path, "folder holds no images")]
        elif path.is_file():
            found.append(Input(path))
        else:
            found.append(Input(path, "no such file or folder"))
    return found


class UnlabelledImages(Dataset):
    """Yields ``(tensor, index, error)``; an image that cannot be read gives zeros and its error text."""

    def __init__(self, inputs: Sequence[Input], transform: Callable[[Image.Image], torch.Tensor],
                 image_size: int) -> None:
        self.inputs = list(inputs)
        self.transform = transform
        self.blank = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        item = self.inputs[index]
        if item.error:
            return self.blank, index, item.error
        try:
            return self.transform(load_rgb(item.path)), index, ""
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            return self.blank, index, f"unreadable image: {type(exc).__name__}: {exc}"
