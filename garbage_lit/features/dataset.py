"""Cached features in memory as one tensor, and the sampler that gives each epoch one view per image."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler


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

    def loader(self, batch_size: int, shuffle: bool) -> DataLoader:
        """Batches of ``batch_size`` in :class:`ViewSampler` order (``shuffle``) or in image order, one view."""
        order = ViewSampler(self) if shuffle else SequentialSampler(range(self.num_images))
        return DataLoader(self, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False))


class ViewSampler(Sampler[int]):
    """Each epoch: every image once, shuffled exactly as ``DataLoader(shuffle=True)`` would, in one random view.

    The shuffle is a :class:`RandomSampler` over the images, so with one view the order (and the
    global random state consumed) is identical to training on images; the view choice draws its own
    seed from the global generator, which ``seed_everything`` seeds.
    """

    def __init__(self, dataset: FeatureDataset) -> None:
        self.num_images, self.views = dataset.num_images, dataset.views
        self.order = RandomSampler(range(self.num_images))

    def __len__(self) -> int:
        return self.num_images

    def __iter__(self) -> Iterator[int]:
        order = list(self.order)
        if self.views == 1:
            yield from order
            return
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        chosen = torch.randint(self.views, (self.num_images,), generator=torch.Generator().manual_seed(seed))
        yield from (view * self.num_images + image for image, view in zip(order, chosen.tolist()))
