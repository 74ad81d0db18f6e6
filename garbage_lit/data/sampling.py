"""Data order and random draws that a resumed run replays exactly.

Each epoch's order is a permutation seeded by (the run's seed, the epoch), and each sample's random transform draws
from a generator seeded by (seed, epoch, its position in the epoch): functions of where the run is, not of any
process's random state. So a run stopped anywhere and resumed from its checkpoint sees exactly the batches it would
have seen, with any number of DataLoader workers. :class:`ResumableLoader` is the ``DataLoader`` Lightning checkpoints
(``state_dict`` / ``load_state_dict``): the epoch and the batches it has served, which a resumed run skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

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


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over :class:`SeededItems` in :class:`EpochSampler` order whose position Lightning checkpoints.

    ``state_dict()`` is the epoch and the batches served in it; after ``load_state_dict`` the loader skips those
    batches when it next serves that epoch. ``position`` counts the batches served in the current epoch (what a batch
    transform seeds its draws by). The loader's own generator, not the process's, draws the workers' base seed.
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, seed: int, **kwargs: Any) -> None:
        self.epoch_sampler = EpochSampler(len(dataset), shuffle, seed)
        super().__init__(SeededItems(dataset), batch_size=batch_size, sampler=self.epoch_sampler,
                         generator=torch.Generator().manual_seed(seed), **kwargs)
        self.position = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        skip = resume["batches"] if resume and resume["epoch"] == self.epoch_sampler.epoch else 0
        self.epoch_sampler.start = skip * self.batch_size
        self.position = skip
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch_sampler.epoch, "batches": self.position}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict)
