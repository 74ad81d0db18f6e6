"""The LightningModule every backbone shares: new linear head, loss, metrics, optimizer set-up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from garbage_lit.models.backbones import build_headless, create_backbone, is_pretrained_source
from garbage_lit.models.metrics import SplitMetrics, class_metrics
from garbage_lit.run.folder import TEST, TRAIN, VAL


class GarbageClassifier(pl.LightningModule):
    """An ImageNet backbone (frozen by default, as in the paper) with a new ``num_classes`` linear head.

    The backbone is architecture ``arch`` of model zoo ``zoo`` (see :mod:`garbage_lit.models.backbones`;
    None: the first zoo that has ``arch``). ``optimizer`` and ``scheduler`` are partials (Hydra
    ``_partial_: true``) that receive the trainable parameters.

    Every split logs ``<split>/loss``, ``<split>/acc`` and ``<split>/recall`` (:mod:`garbage_lit.models.metrics`)
    each epoch; the evaluated splits (``eval_splits``, the validation loaders in order, and the test) add
    per-class accuracy and, with ``class_bins`` (the waste bin of each class), bin accuracy and per-bin recall.
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        weights: str = "auto",
        freeze_backbone: bool = True,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        eval_splits: Sequence[str] = ("test",),
        preprocessing: dict | None = None,
        zoo: str | None = None,
        class_bins: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        # Optimizer and scheduler partials stay out of the checkpoint so it loads with weights_only=True.
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        backbone = create_backbone(arch, weights, zoo)
        self.backbone, self.weights_source = backbone.module, backbone.weights_source
        self.head = nn.Linear(backbone.feature_dim, num_classes)
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.eval_splits = list(eval_splits)
        self.class_bins = list(class_bins) if class_bins else None

        self.train_metrics = SplitMetrics(TRAIN, num_classes, confusion=False)
        self.val_metrics = SplitMetrics(VAL, num_classes)
        self.test_metrics = SplitMetrics(TEST, num_classes)
        self.confusion_matrix: torch.Tensor | None = None  # the last test's, for the run's final results

    # -- model ----------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pretrained_layout"] = is_pretrained_source(self.weights_source)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the backbone in the layout it was trained with when the checkpoint holds its weights.

        (Loading for inference builds with ``weights="none"``; GoogLeNet trained from ImageNet weights
        needs its ``transform_input``. A head-only checkpoint, of training on cached features, keeps the model's.)
        """
        holds_backbone = any(key.startswith("backbone.") for key in checkpoint["state_dict"])
        if holds_backbone and checkpoint["pretrained_layout"] != is_pretrained_source(self.weights_source):
            self.backbone = build_headless(self.hparams.arch, checkpoint["pretrained_layout"], self.hparams.zoo)

    # -- steps ----------------------------------------------------------------------------------
    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, logits and targets of one batch: what every step method shares."""
        inputs, targets = batch
        logits = self(inputs)
        return self.criterion(logits, targets), logits, targets

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """A batch's loss; its labels may be class probabilities (a batch transform such as MixUp mixed them), which
        the loss takes as they are and the metrics read as their most likely class.

        The metric objects are updated every step and handed to Lightning once, with the epoch's last batch
        (it computes them at the epoch's end): each ``self.log`` costs more than a step on cached features.
        """
        loss, logits, targets = self.model_step(batch)
        self.train_metrics.update(loss, logits, targets.argmax(dim=1) if targets.ndim > 1 else targets)
        if self.trainer.is_last_batch or batch_idx + 1 >= self.trainer.num_training_batches:
            self.log_dict(self.train_metrics.metrics(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        self._evaluation_step(self.eval_splits[dataloader_idx], batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The final evaluation of the kept model on the test split; returns the batch's class probabilities
        (for callbacks that keep per-image predictions)."""
        return self._evaluation_step(TEST, batch).softmax(dim=-1)

    def _evaluation_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self._metrics_of(split).update(loss, logits, targets)
        return logits

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities for the images of ``batch`` (a tensor, or a tuple/list starting with one)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=-1)

    # -- epochs ---------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        """Keep a frozen backbone in eval mode, so its BatchNorm statistics and dropout stay fixed.

        Frozen means no backbone parameter is trainable *now*: the paper's ``freeze_backbone``, or the
        warm-up of a ``BackboneFinetuning`` callback, which runs its hook before this one and makes
        the backbone trainable (and so back in train mode) from its unfreeze epoch on. (Lightning sets
        submodule modes itself, so overriding ``train()`` would not be enough.)
        """
        self.backbone.train(any(p.requires_grad for p in self.backbone.parameters()))

    def on_validation_epoch_end(self) -> None:
        for split in self.eval_splits:
            self._log_epoch(split, per_class=True)  # curves per class

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self._log_epoch(TEST, per_class=False)  # the run's results keep the matrix

    def _log_epoch(self, split: str, per_class: bool) -> torch.Tensor:
        """Log ``split``'s epoch: loss, accuracy, recall, and from its confusion matrix bin (and ``per_class``)
        metrics; return the matrix."""
        metrics = self._metrics_of(split)
        matrix = metrics.confusion_matrix()
        self.log_dict({**metrics.metrics(), **class_metrics(matrix, self.class_names, self.class_bins, split,
                                                            per_class)})
        return matrix

    def _metrics_of(self, split: str) -> SplitMetrics:
        return self.val_metrics if split == VAL else self.test_metrics

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured: pick one with optim=sgd or optim=adam")
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
