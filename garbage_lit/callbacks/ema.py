"""An exponential moving average (EMA) of the weights, the model that is validated, tested and saved."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging

from garbage_lit.errors import ConfigError

log = logging.getLogger(__name__)


class WeightEMA(WeightAveraging):
    """Lightning's weight averaging with an EMA whose horizon is given in epochs, so one setting fits any data size.

    After every optimizer step ``average = decay * average + (1 - decay) * weights`` (BatchNorm statistics
    too), with ``decay = 0.5 ** (1 / (half_life_epochs * steps per epoch))``, set when training starts: the
    weights of ``half_life_epochs`` ago count half (TrashNet's 57 steps an epoch and half_life_epochs=1:
    decay 0.988; Lightning's default 0.999 would average over 12 epochs of them). Lightning swaps the average
    in for validation, writes it as the ``state_dict`` of every checkpoint (the weights being trained go to
    ``current_model_state``, from which a resumed run continues) and copies it into the model when training
    ends, so the final test, ``checkpoints/model.ckpt`` and everything made from it use the average. The average
    restarts from the weights when the trainable parameters change (the backbone unfrozen after a linear probe).
    BatchNorm statistics are averaged too; ``callbacks/batchnorm=recalibrate`` re-estimates them for the average
    before every validation instead.
    """

    def __init__(self, half_life_epochs: float = 1.0) -> None:
        if not half_life_epochs > 0:
            raise ConfigError(f"callbacks.weight_averaging.half_life_epochs={half_life_epochs} must be above 0 "
                             f"(e.g. 1: the weights of one epoch ago count half)")
        super().__init__(avg_fn=self._ema_update)
        self.half_life_epochs = half_life_epochs
        self.decay: float | None = None  # per optimizer step, once the steps per epoch are known
        self.trainable: int | None = None  # trainable parameters the average follows (a change restarts it)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Restart the average from the weights when the trainable parameters change (a fine-tune unfreezing its
        backbone after the linear probe): the probe's weights, and Lightning's copy of the untrained model made at
        set-up, would otherwise weigh on the average for epochs after the network it follows has changed."""
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        if self.trainable is not None and trainable != self.trainable and self._average_model is not None:
            self._average_model.n_averaged.zero_()  # the next update copies the weights
            log.info("EMA of the weights restarted at step %d: %d trainable parameters, were %d",
                     trainer.global_step, trainable, self.trainable)
        self.trainable = trainable
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "trainable": self.trainable}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.trainable = state_dict.get("trainable")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        steps = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        self.decay = 0.5 ** (1 / (self.half_life_epochs * steps))
        log.info("EMA of the weights: decay %.5f per step (half-life %g epochs of %d steps)", self.decay,
                 self.half_life_epochs, steps)

    def _ema_update(self, average: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        # torch's get_ema_avg_fn with the decay read at each step; integer buffers (BatchNorm's counts) come out
        # float and are rounded back by AveragedModel's copy.
        return self.decay * average + (1 - self.decay) * current
