"""BatchNorm statistics re-estimated at the evaluation size (FixRes), before every validation and the final test."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from torch.nn.modules.batchnorm import _BatchNorm

log = logging.getLogger(__name__)


class RecalibrateBatchNorm(pl.Callback):
    """Training at a smaller size than the evaluation (``data.image_size`` below ``data.eval_image_size``) is cheaper,
    and random-resized crops show objects larger than an evaluation crop of the same size does; but BatchNorm's
    running statistics are then those of the training size. Before every validation and before the final test, this
    callback re-estimates them at the evaluation size: the running statistics of the backbone's BatchNorm layers
    (but those of its frozen stages, which keep their pretrained ones) are reset and averaged over ``images``
    training images with the evaluation preprocessing (``calibration_loader`` of the data module: a fixed, seeded
    choice), the network otherwise in eval mode, without gradients. The statistics are a function of the weights
    alone, so a resumed run re-estimates the same ones; checkpoints and ``model.ckpt`` hold them, so ``evaluate``,
    ``predict`` and the export see the run's test model. Under an EMA of the weights the average is re-estimated
    (Lightning swaps it in before validation: this callback comes after it).
    """

    def __init__(self, images: int = 512) -> None:
        self.images = images

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.recalibrate(trainer, pl_module)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.recalibrate(trainer, pl_module)

    def recalibrate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        calibration_loader = getattr(trainer.datamodule, "calibration_loader", None)
        if calibration_loader is None:  # cached features: the head alone, no BatchNorm to re-estimate
            return
        frozen = {id(m) for stage in pl_module.stages[:pl_module.hparams.frozen_stages] for m in stage.modules()}
        layers = [m for m in pl_module.backbone.modules()
                  if isinstance(m, _BatchNorm) and m.track_running_stats and id(m) not in frozen]
        if not layers:
            return
        modes = {module: module.training for module in pl_module.modules()}
        momenta = [layer.momentum for layer in layers]
        pl_module.eval()
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average over the calibration batches
            layer.train()
        seen = 0
        try:
            with torch.no_grad(), torch.autocast(pl_module.device.type, enabled=False):
                for images, _ in calibration_loader(self.images):
                    pl_module(images.to(pl_module.device))
                    seen += len(images)
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
            for module, training in modes.items():
                module.train(training)
        log.info("BatchNorm statistics of %d layers re-estimated on %d training images at the evaluation size",
                 len(layers), seen)
