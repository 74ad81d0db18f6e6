"""Cached features in memory as one tensor, and the sampler that gives each epoch one view per image (replayed exactly
by a resumed run: :mod:`garbage_lit.data.sampling`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from garbage_lit.data.sampling import EpochSampler, ResumableLoader, draw_seed


class FeatureDataset(Dataset):
    """Cached features of ``K`` views per image held in memory as one tensor; a batch is one gather.

    ``features`` is ``(K, N, D)`` on ``device``. Indexed with a list of flat indices ``view * N + image``
    (what ``DataLoader(batch_size=None, sampler=BatchSampler(...))`` passes, see :meth:`loader`) it
    returns the whole batch ``(features (B, D), labels)``: no per-sample items, no collate.
    """

    def __init__(self, path: str | Path, labels: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        self.features = torch.from_numpy(np.load(self.path)).to(device)
        self.views, self.num_images, dim = self.features.shape
        self._flat = self.features.view(self.views * self.num_images, dim)
        self.labels = torch.as_tensor(list(labels), device=device)
        if self.num_images != len(self.labels):
            raise ValueError(f"{self.path} holds {self.num_images} images but {len(self.labels)} labels were given")

    def __len__(self) -> int:
        return self.views * self.num_images

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, device=self._flat.device)
        return self._flat[index], self.labels[index % self.num_images]

    def loader(self, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
        """Batches of ``batch_size``: for training (``shuffle``) a :class:`ViewSampler` epoch, resumable; else the
        images in order, one view."""
        if shuffle:
            return ResumableLoader(self, batch_size, ViewSampler(self, seed), batched=True)
        return DataLoader(self, batch_size=None,
                          sampler=BatchSampler(SequentialSampler(range(self.num_images)), batch_size, drop_last=False))


class ViewSampler(EpochSampler):
    """Each epoch: every image once, in an order seeded by (seed, epoch), each in one of its views, drawn by (seed,
    epoch) too; yields flat indices ``view * N + image``. With one view the order is :class:`EpochSampler`'s, as
    training on images has it."""

    def __init__(self, dataset: FeatureDataset, seed: int) -> None:
        super().__init__(dataset.num_images, shuffle=True, seed=seed)
        self.views = dataset.views

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        order = self.order()
        chosen = torch.randint(self.views, (self.size,), generator=torch.Generator().manual_seed(
            draw_seed(self.seed, self.epoch, -2))).tolist() if self.views > 1 else [0] * self.size
        for position in range(start, self.size):
            yield chosen[position] * self.size + order[position]
