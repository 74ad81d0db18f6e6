"""The datasets over image files: labelled samples for training and evaluation, unlabelled inputs for predict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from garbage_lit.data.images import load_rgb, not_an_image
from garbage_lit.data.samples import Sample


class ImageDataset(Dataset):
    """Yields ``(transform(image), label)`` for each checked, labelled sample."""

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image = load_rgb(sample.path)
        return (self.transform(image) if self.transform else image), sample.label


# -- predict's inputs: files and folders in, one row per file out, what is not predicted told as a row -------
@dataclass(frozen=True)
class Input:
    """One file to predict, or one that is not predicted (``skipped`` says why)."""

    path: Path
    skipped: str = ""


def collect_inputs(inputs: Sequence[str | Path]) -> list[Input]:
    """Every file under the folders (recursively, sorted), judged by name as training's scan judges them (images to
    predict, other files skipped with the reason); files given by name are all predicted, whatever their extension."""
    found: list[Input] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found += [Input(p, not_an_image(p) or "") for p in files] or [Input(path, "folder holds no files")]
        elif path.is_file():
            found.append(Input(path))
        else:
            found.append(Input(path, "no such file or folder"))
    return found


class UnlabelledImages(Dataset):
    """Yields ``(tensor, index, error)`` for inputs that are not skipped; an image that cannot be read gives zeros and
    its error text."""

    def __init__(self, inputs: Sequence[Input], transform: Callable[[Image.Image], torch.Tensor],
                 image_size: int) -> None:
        self.inputs = list(inputs)
        self.transform = transform
        self.blank = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        item = self.inputs[index]
        try:
            return self.transform(load_rgb(item.path)), index, ""
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            return self.blank, index, f"unreadable image: {type(exc).__name__}: {exc}"
