"""Learning-rate schedules the configs can name (``scheduler=warmup_cosine``)."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR

from garbage_lit.errors import ConfigError


def warmup_cosine_factor(epoch: int, warmup_epochs: int, max_epochs: int, min_factor: float) -> float:
    """Linear ramp to 1 over ``warmup_epochs`` (epoch 0 at ``1/(warmup_epochs+1)``), then cosine to ``min_factor``."""
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    progress = min(1.0, (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class GroupsAddedLaterKeepTheirLR(LambdaLR):
    """A LambdaLR for the param groups the optimizer had when it was built.

    Groups added later (the backbone, by ``BackboneFinetuning``) keep whatever learning rate their
    owner sets; torch's own schedulers refuse an optimizer whose group count has changed.
    """

    def get_lr(self) -> list[float]:
        scheduled = super().get_lr()
        return [*scheduled, *(group["lr"] for group in self.optimizer.param_groups[len(scheduled):])]


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_epochs: int = 1, max_epochs: int = 10,
                  min_factor: float = 0.0) -> LambdaLR:
    """Per-epoch linear warm-up, then cosine decay, in closed form (so resuming is exact)."""
    if not 0 <= warmup_epochs < max_epochs:
        raise ConfigError(f"scheduler.warmup_epochs={warmup_epochs} must lie in [0, epochs={max_epochs})")
    return GroupsAddedLaterKeepTheirLR(
        optimizer, partial(warmup_cosine_factor, warmup_epochs=warmup_epochs, max_epochs=max_epochs,
                           min_factor=min_factor))
