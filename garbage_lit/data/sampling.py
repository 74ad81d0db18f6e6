"""Data order and random draws that a resumed run replays exactly.

Each epoch's order is a permutation seeded by (the run's seed, the epoch), and each sample's random transform draws
from a generator seeded by (seed, epoch, its position in the epoch): functions of where the run is, not of any
process's random state. So a run stopped anywhere and resumed from its checkpoint sees exactly the batches it would
have seen, with any number of DataLoader workers. :class:`ResumableLoader` is the ``DataLoader`` Lightning checkpoints
(``state_dict`` / ``load_state_dict``): the epoch and the batches it has served, which a resumed run skips. (Under DDP
Lightning deals the images with its own distributed sampler; a resume there is not exact, and says so.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

_MASK = (1 << 63) - 1


def draw_seed(seed: int, epoch: int, position: int, stream: int = 0) -> int:
    """A 63-bit seed for the draws of ``position`` in ``epoch`` of a run seeded ``seed`` (``stream`` keeps apart the
    draws of different uses: samples, batch transforms)."""
    state = torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9
                                           + position * 0x94D049BB133111EB + stream) & _MASK)
    return int(torch.randint(0, _MASK, (), generator=state))


class EpochSampler(Sampler[tuple[int, int]]):
    """Every item once per epoch, shuffled by (seed, epoch) when ``shuffle``; yields ``(index, draw seed)``.

    Lightning calls :meth:`set_epoch` before each epoch. ``start`` skips the first items of the next epoch only (a
    resumed run's served batches).
    """

    def __init__(self, size: int, shuffle: bool, seed: int) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        """This epoch's order of the items."""
        if not self.shuffle:
            return list(range(self.size))
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(draw_seed(self.seed, self.epoch,
                                                                                          -1))).tolist()

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self.start = self.start, 0
        order = self.order()
        for position in range(start, self.size):
            yield order[position], draw_seed(self.seed, self.epoch, position)


class SeededItems(Dataset):
    """``dataset``'s items drawn under the seed each key carries: ``(index, seed)`` -> ``dataset[index]`` with torch's
    random generator seeded, so its random transforms give the same pixels in any process, worker or order."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class EpochBatches(BatchSampler):
    """Batches of an :class:`EpochSampler`-like sampler, with its ``set_epoch`` (Lightning calls it on the loader's
    sampler), for datasets that take a whole batch of indices at once (cached features)."""

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over ``items`` (an :class:`EpochSampler`, or one like it) whose position Lightning checkpoints.

    ``state_dict()`` is the epoch and the batches served in it; after ``load_state_dict`` the loader skips those
    batches when it next serves that epoch. ``position`` counts the batches served in the current epoch (what a batch
    transform seeds its draws by). Items go through :class:`SeededItems`, or with ``batched`` the dataset takes a whole
    batch of indices at once (cached features). The loader's own generator, not the process's, draws the workers' base
    seed.
    """

    def __init__(self, dataset: Dataset, batch_size: int, items: EpochSampler, batched: bool = False,
                 **kwargs: Any) -> None:
        self.items, self.items_per_batch = items, batch_size
        generator = torch.Generator().manual_seed(items.seed)
        if batched:
            super().__init__(dataset, batch_size=None, sampler=EpochBatches(items, batch_size, drop_last=False),
                             generator=generator, **kwargs)
        else:
            super().__init__(SeededItems(dataset), batch_size=batch_size, sampler=items, generator=generator,
                             **kwargs)
        self.position = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        skip = resume["batches"] if resume and resume["epoch"] == self.items.epoch else 0
        self.items.start = skip * self.items_per_batch
        self.position = skip
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.items.epoch, "batches": self.position}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict)
