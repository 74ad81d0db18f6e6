"""Channels-last memory format for convolutional models (on by default: ``callbacks.channels_last``)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class ChannelsLast(pl.Callback):
    """Store the model's 4-D weights channels-last before training, testing or predicting.

    Convolutions whose weights are channels-last produce channels-last activations, which oneDNN on CPU and
    tensor cores on GPU run markedly faster (benchmarks/finetune_speed.py); the first convolution converts the
    input batch. Predictions match the default format's to float rounding (tests/test_channels_last.py).
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
