"""A map-style dataset over checked, labelled image files."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from garbage_lit.data.images import load_rgb
from garbage_lit.data.samples import Sample


class ImageDataset(Dataset):
    """Yields ``(transform(image), label)`` for each sample."""

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image = load_rgb(sample.path)
        return (self.transform(image) if self.transform else image), sample.label
