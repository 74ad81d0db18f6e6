"""The LightningModule every backbone shares: new linear head, loss, metrics, optimizer set-up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassCalibrationError

from garbage_lit.errors import ConfigError
from garbage_lit.models.backbones import backbone_stages, build_headless, create_backbone
from garbage_lit.models.calibration import BINS, calibrated
from garbage_lit.models.inference import averaged_log_probabilities
from garbage_lit.models.metrics import SplitMetrics, class_metrics
from garbage_lit.records.folder import ECE, ECE_RAW, TEST, TRAIN, VAL, is_pretrained_source, metric_key

TRAIN_METRICS_SO_FAR = "train_metrics_so_far"  # a mid-epoch checkpoint's key for the epoch's training metrics


class GarbageClassifier(pl.LightningModule):
    """An ImageNet backbone (frozen by default, as in the paper) with a new ``num_classes`` linear head.

    The backbone is architecture ``arch`` of model zoo ``zoo`` (see :mod:`garbage_lit.models.backbones`;
    None: the first zoo that has ``arch``). ``optimizer`` builds the optimizer from the model's trainable parts
    (:class:`~garbage_lit.training.optimizers.OptimizerFactory`), ``scheduler`` is a partial (Hydra ``_partial_: true``)
    that receives it. ``frozen_stages``: the backbone's first stages (the stem is the first; see :attr:`stages`) stay
    frozen, in eval mode, for the whole run, even when the rest is fine-tuned: they cost no backward pass.

    Every split logs ``<split>/loss``, ``<split>/acc`` and ``<split>/recall`` (:mod:`garbage_lit.models.metrics`)
    each epoch; the evaluated splits (``eval_splits``, the validation loaders in order, and the test) add
    per-class accuracy and, with ``class_bins`` (the waste bin of each class), bin accuracy and per-bin recall.

    ``flip_tta``: the evaluated splits and ``predict_step`` average each image's class probabilities with its
    mirror image's (test-time augmentation; the checkpoint keeps the setting, so evaluate and predict do the same).
    ``class_weighting="balanced"`` weighs each class's loss by ``images / (classes x its images)`` in
    ``class_counts`` (the training split's), so a rare class counts as much as a common one.

    The final test adds ``test/ece`` (and ``test/ece_raw``, before temperature scaling, when fitted).

    ``temperature`` (None until :func:`~garbage_lit.insight.calibration.fit_on_validation` fits one) divides the
    scores (logits, or flip-averaged log probabilities) before the softmax in :meth:`probabilities`; it is saved in
    and restored from checkpoints.
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        weights: str = "auto",
        freeze_backbone: bool = True,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        frozen_stages: int = 0,
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        eval_splits: Sequence[str] = ("test",),
        preprocessing: dict | None = None,
        zoo: str | None = None,
        class_bins: Sequence[str] | None = None,
        flip_tta: bool = False,
        class_weighting: str = "none",
        class_counts: Sequence[int] | None = None,
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
        if not 0 <= frozen_stages <= len(self.stages):
            raise ConfigError(f"model.frozen_stages={frozen_stages}: {arch} has {len(self.stages)} stages (the stem "
                              f"first); choose 0 (none frozen) to {len(self.stages)}")
        self.freeze_stages()
        self.criterion = nn.CrossEntropyLoss(weight=class_weights(class_weighting, class_counts, num_classes),
                                             label_smoothing=label_smoothing)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.eval_splits = list(eval_splits)
        self.class_bins = list(class_bins) if class_bins else None

        self.train_metrics = SplitMetrics(TRAIN, num_classes, confusion=False)
        self.val_metrics = SplitMetrics(VAL, num_classes)
        self.test_metrics = SplitMetrics(TEST, num_classes)
        self.confusion_matrix: torch.Tensor | None = None  # the last test's, for the run's final results
        self.test_ece = MulticlassCalibrationError(num_classes, n_bins=BINS, validate_args=False)
        self.test_ece_raw = MulticlassCalibrationError(num_classes, n_bins=BINS, validate_args=False)
        self.temperature: float | None = None

    # -- model ----------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    @property
    def stages(self) -> list[nn.ModuleList]:
        """The backbone's stages, input first: the stem, its blocks grouped by resolution, ... (its zoo's reading)."""
        return backbone_stages(self.backbone, self.hparams.arch, self.hparams.zoo)

    def freeze_stages(self) -> None:
        """Keep the first ``frozen_stages`` stages frozen and in eval mode (BatchNorm statistics fixed)."""
        for stage in self.stages[:self.hparams.frozen_stages]:
            stage.requires_grad_(False)
            stage.eval()

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """Class probabilities: ``softmax(scores / temperature)``, a plain softmax while no temperature is fitted."""
        return calibrated(scores, self.temperature)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pretrained_layout"] = is_pretrained_source(self.weights_source)
        checkpoint["temperature"] = self.temperature
        if self._trainer is not None and 0 < self.trainer.fit_loop.epoch_loop.batch_progress.current.ready \
                < self.trainer.num_training_batches:  # mid-epoch: the epoch's metrics so far
            checkpoint[TRAIN_METRICS_SO_FAR] = self.train_metrics.running_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the backbone in the layout it was trained with when the checkpoint holds its weights.

        (Loading for inference builds with ``weights="none"``; GoogLeNet trained from ImageNet weights
        needs its ``transform_input``. A head-only checkpoint, of training on cached features, keeps the model's.)
        The fitted temperature comes back too.
        """
        self.temperature = checkpoint.get("temperature")
        self.train_metrics.load_running_state(checkpoint.get(TRAIN_METRICS_SO_FAR, {}))
        holds_backbone = any(key.startswith("backbone.") for key in checkpoint["state_dict"])
        if holds_backbone and checkpoint["pretrained_layout"] != is_pretrained_source(self.weights_source):
            self.backbone = build_headless(self.hparams.arch, checkpoint["pretrained_layout"], self.hparams.zoo)

    # -- steps ----------------------------------------------------------------------------------
    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                   flip: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, scores and targets of one batch: what every step method shares.

        The scores are the logits, or with ``flip`` the log of the class probabilities averaged over each image and
        its mirror (:func:`~garbage_lit.models.inference.averaged_log_probabilities`); softmax gives probabilities.
        """
        inputs, targets = batch
        scores = averaged_log_probabilities([self], inputs, flip=True) if flip else self(inputs)
        return self.criterion(scores, targets), scores, targets

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """A batch's loss; its labels may be class probabilities (a batch transform such as MixUp mixed them), which
        the loss takes as they are and the metrics read as their most likely class.

        The metrics count the epoch's batches at its last one (:meth:`SplitMetrics.defer`) and are handed to Lightning
        then (it computes them at the epoch's end): each ``self.log`` costs more than a step on cached features.
        """
        loss, logits, targets = self.model_step(batch)
        self.train_metrics.defer(loss, logits, targets.argmax(dim=1) if targets.ndim > 1 else targets)
        if self.trainer.is_last_batch or batch_idx + 1 >= self.trainer.num_training_batches:
            self.log_dict(self.train_metrics.metrics(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        self._evaluation_step(self.eval_splits[dataloader_idx], batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The final evaluation of the kept model on the test split, with its calibration; returns the batch's
        scores (for callbacks that keep per-image outputs: :mod:`garbage_lit.callbacks.test_predictions`)."""
        scores, targets = self._evaluation_step(TEST, batch), batch[1]
        self.test_ece.update(self.probabilities(scores), targets)
        if self.temperature is not None:
            self.test_ece_raw.update(scores.softmax(dim=-1), targets)
        return scores

    def _evaluation_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """One evaluated batch, in float32 even when training runs under mixed-precision autocast: the precision
        evaluate, predict and the export use, so ``val/acc`` (and the epoch it keeps) is the checkpoint's."""
        with torch.autocast(self.device.type, enabled=False):
            loss, scores, targets = self.model_step(batch, flip=self.hparams.flip_tta)
        self._metrics_of(split).update(loss, scores, targets)
        return scores

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Scores for the images of ``batch`` (a tensor, or a tuple/list starting with one): the log of the class
        probabilities, flip-averaged with ``flip_tta``; :meth:`probabilities` turns them into calibrated ones."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return averaged_log_probabilities([self], images, self.hparams.flip_tta)

    # -- epochs ---------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """As :meth:`on_train_epoch_start`: a run resumed in the middle of an epoch starts with this hook only."""
        self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        """Keep a frozen backbone in eval mode, so its BatchNorm statistics and dropout stay fixed.

        Frozen means no backbone parameter is trainable *now*: the paper's ``freeze_backbone``, or the
        warm-up of a ``BackboneFinetuning`` callback, which runs its hook before this one and makes
        the backbone trainable (and so back in train mode) from its unfreeze epoch on. (Lightning sets
        submodule modes itself, so overriding ``train()`` would not be enough.)
        """
        trains = any(p.requires_grad for p in self.backbone.parameters())
        self.backbone.train(trains)
        if trains:
            self.freeze_stages()

    def on_validation_epoch_end(self) -> None:
        for split in self.eval_splits:
            self._log_epoch(split, per_class=True)  # curves per class

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self._log_epoch(TEST, per_class=False)  # the run's results keep the matrix
        self.log_dict({metric_key(TEST, ECE): self.test_ece,
                       **({metric_key(TEST, ECE_RAW): self.test_ece_raw} if self.temperature is not None else {})})

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
            raise ConfigError("no optimizer configured: pick one with optim=sgd or optim=adam")
        parts = [("head", self.head, None)]
        if any(p.requires_grad for p in self.backbone.parameters()):
            parts.append(("backbone", self.backbone, self.stages))
        optimizer = self.optimizer_factory(parts)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


CLASS_WEIGHTINGS = ("none", "balanced")


def class_weights(weighting: str, counts: Sequence[int] | None, num_classes: int) -> torch.Tensor | None:
    """The loss weight of each class: None for ``none``; for ``balanced`` ``images / (classes x its images)``
    (scikit-learn's "balanced": 1 for every class when all are the same size), from the training split's ``counts``."""
    if weighting not in CLASS_WEIGHTINGS:
        raise ConfigError(f"model.class_weighting={weighting!r} is not known; "
                         f"choose one of {', '.join(CLASS_WEIGHTINGS)}")
    if weighting == "none":
        return None
    if counts is None or len(counts) != num_classes:
        raise ConfigError(f"model.class_weighting={weighting} needs the training images of each of the {num_classes} "
                         f"classes (class_counts, passed by garbage_lit.train); got {counts}")
    per_class = torch.tensor(counts, dtype=torch.float32)
    return per_class.sum() / (num_classes * per_class.clamp(min=1))  # a class without images weighs as one image
