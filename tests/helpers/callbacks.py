"""Callbacks a test adds to a run through its config (``+callbacks.<name>._target_=helpers.callbacks.<Class>``).

``train(cfg)`` builds its callbacks itself, so each class keeps its newest instance as ``latest`` for the test to read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
import torch

from garbage_lit.callbacks.ema import WeightEMA


class FailAtEpoch(pl.Callback):
    """Fails the run with ``RuntimeError("interrupted")`` when epoch ``epoch`` starts (earlier epochs are saved)."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("interrupted")


class BackboneStateProbe(pl.Callback):
    """Per epoch: whether the backbone trains (mode, trainable parameters), each param group's lr, and the first and
    last backbone parameters (the stem's, the last stage's) at the start of the fit and at each epoch's end."""

    latest: BackboneStateProbe | None = None

    def __init__(self) -> None:
        self.by_epoch: dict[int, tuple[bool, bool, list[float]]] = {}
        self.first_weight: dict[int | str, object] = {}
        self.last_weight: dict[int | str, object] = {}
        BackboneStateProbe.latest = self

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_weight["start"] = next(pl_module.backbone.parameters()).detach().clone()
        self.last_weight["start"] = list(pl_module.backbone.parameters())[-1].detach().clone()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx) -> None:
        backbone = pl_module.backbone
        self.by_epoch[trainer.current_epoch] = (
            backbone.training, any(p.requires_grad for p in backbone.parameters()),
            [round(group["lr"], 8) for group in trainer.optimizers[0].param_groups])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_weight[trainer.current_epoch] = next(pl_module.backbone.parameters()).detach().clone()
        self.last_weight[trainer.current_epoch] = list(pl_module.backbone.parameters())[-1].detach().clone()


class ManualEMA(pl.Callback):
    """The run's EMA of the weights recomputed by hand (decay from its ``WeightEMA``) after every optimizer step;
    at each epoch's end the average and the trained weights as they are, and the weights training starts from
    (floating-point tensors only)."""

    latest: ManualEMA | None = None

    def __init__(self) -> None:
        self.average: dict[str, torch.Tensor] | None = None
        self.by_epoch: dict[int, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}
        self.start: dict[str, torch.Tensor] = {}
        ManualEMA.latest = self

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = _float_state(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx) -> None:
        decay = next(c for c in trainer.callbacks if isinstance(c, WeightEMA)).decay
        weights = _float_state(pl_module)
        self.average = weights if self.average is None else {
            key: decay * self.average[key] + (1 - decay) * value for key, value in weights.items()}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.by_epoch[trainer.current_epoch] = (dict(self.average), _float_state(pl_module))


def _float_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items() if value.is_floating_point()}


class StopAt(pl.Callback):
    """Sends this process ``signal`` (15: SIGTERM, 9: SIGKILL) after optimizer step ``step`` (or at the end of epoch
    ``epoch``): a run stopped at a chosen point, once. A resumed run that starts before that point (a kill -9 resumes
    from an earlier checkpoint) goes on past it: the stop leaves the file ``marker``."""

    def __init__(self, signal: int = 15, step: int | None = None, epoch: int | None = None,
                 marker: str = "stopped") -> None:
        self.signal, self.step, self.epoch, self.marker = signal, step, epoch, Path(marker)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.step is not None and trainer.global_step == self.step:
            self._stop()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epoch is not None and trainer.current_epoch == self.epoch:
            self._stop()

    def _stop(self) -> None:
        if not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), self.signal)
