"""The LightningModule every backbone shares: new linear head, loss, metrics, optimizer set-up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassRecall

from garbage_lit.data.feature_cache import module_fingerprint
from garbage_lit.data.groups import bin_metrics
from garbage_lit.models.backbones import build_headless, create_backbone, is_pretrained_source
from garbage_lit.run.folder import ACC, LOSS, RECALL, TEST, TRAIN, metric_key

# Marks a head-only checkpoint (written while training on cached features): the fingerprint of the backbone left out.
BACKBONE_FINGERPRINT = "backbone_fingerprint"


class GarbageClassifier(pl.LightningModule):
    """An ImageNet backbone (frozen by default, as in the paper) with a new ``num_classes`` linear head.

    The backbone is architecture ``arch`` of model zoo ``zoo`` (see :mod:`garbage_lit.models.backbones`;
    None: the first zoo that has ``arch``).

    ``optimizer`` and ``scheduler`` are partials (Hydra ``_partial_: true``) that receive the
    trainable parameters. Batches hold images or, from the feature cache, ``{"features": ...}``
    (pooled backbone features), which skip the backbone. With ``class_bins`` (the waste bin of each class)
    the evaluated splits also get bin accuracy and per-bin recall (``test/bin_acc``, ``test/bin_recall/<bin>``).

    Metrics are handed to Lightning once per epoch (it computes, syncs and resets them at the epoch's
    end) and the training loss, accuracy and recall are updated once, after the epoch's last batch: the
    per-epoch numbers of logging and updating every step, for a fraction of the per-step cost.

    While the loaders serve cached features the backbone cannot change, so checkpoints written during
    the fit leave it out and record its fingerprint instead (:meth:`restore_backbone` puts it back);
    ``garbage_lit.train`` makes the run's final checkpoints whole again.
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

        # Inputs are the model's logits and the data's labels (a bad label already fails the loss), so the metrics
        # skip re-validating every batch. A NaN loss stays NaN in the epoch's mean (a float nan_strategy puts the
        # value back), as logging the step losses did; "disable" would also drop the batch-size weights.
        def summary() -> MetricCollection:
            return MetricCollection({ACC: MulticlassAccuracy(num_classes, average="micro", validate_args=False),
                                     RECALL: MulticlassRecall(num_classes, average="macro", validate_args=False)})

        def mean_loss() -> MeanMetric:
            return MeanMetric(nan_strategy=float("nan"))

        # Keyed by split; nn.ModuleDict cannot hold a key named "train" (a Module method).
        self.train_metrics = summary()
        self.train_loss = mean_loss()
        self.eval_metrics = nn.ModuleDict({split: summary() for split in self.eval_splits})
        self.eval_loss = nn.ModuleDict({split: mean_loss() for split in self.eval_splits})
        self.eval_confusion = nn.ModuleDict({split: MulticlassConfusionMatrix(num_classes)
                                             for split in self.eval_splits})
        self.final_metrics = summary()
        self.final_confusion = MulticlassConfusionMatrix(num_classes)
        self.final_results: dict[str, Any] = {}
        self._logged: set[str] = set()  # splits whose metric objects are logged for the current epoch
        self._train_outputs: list[tuple[torch.Tensor, ...]] = []  # this epoch's (logits, targets, loss) so far
        self._backbone_fingerprint: str | None = None

    # -- model ----------------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits for images, or for ``{"features": ...}`` batches of cached backbone features."""
        features = inputs["features"] if isinstance(inputs, dict) else self.backbone(inputs)
        return self.head(features)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pretrained_layout"] = is_pretrained_source(self.weights_source)
        if self._trainer is not None and self.trainer.state.fn == "fit" \
                and getattr(self.trainer.datamodule, "serves_features", False):
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                        if not k.startswith("backbone.")}
            checkpoint[BACKBONE_FINGERPRINT] = self.backbone_fingerprint()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the backbone in the layout it was trained with, whatever ``weights`` built it now.

        (Loading for inference builds with ``weights="none"``; GoogLeNet trained from ImageNet weights
        needs its ``transform_input``.) Older checkpoints: pretrained unless trained with weights=none.
        """
        pretrained = checkpoint.get("pretrained_layout", self.hparams.weights != "none")
        if pretrained != is_pretrained_source(self.weights_source):
            self.backbone = build_headless(self.hparams.arch, pretrained, self.hparams.zoo)
            self._backbone_fingerprint = None
        self.restore_backbone(checkpoint)

    def backbone_fingerprint(self) -> str:
        """The fingerprint of the backbone's weights (computed once: only a frozen backbone's is asked for)."""
        if self._backbone_fingerprint is None:
            self._backbone_fingerprint = module_fingerprint(self.backbone)
        return self._backbone_fingerprint

    def restore_backbone(self, checkpoint: dict[str, Any]) -> bool:
        """Put this model's backbone into a head-only ``checkpoint`` (fingerprint checked); False if it was whole."""
        fingerprint = checkpoint.pop(BACKBONE_FINGERPRINT, None)
        if fingerprint is None:
            return False
        if fingerprint != self.backbone_fingerprint():
            raise ValueError(
                f"this checkpoint holds only the head: it was written while training on cached features of the "
                f"{self.hparams.arch} backbone with weights {fingerprint[:12]}..., but the backbone built now "
                f"(model.weights={self.hparams.weights}) has weights {self.backbone_fingerprint()[:12]}.... Resume "
                f"it with the config it was trained with (same model.arch and model.weights); a finished run's "
                f"best and last checkpoints are self-contained")
        checkpoint["state_dict"].update({f"backbone.{k}": v for k, v in self.backbone.state_dict().items()})
        return True

    # -- steps ----------------------------------------------------------------------------------
    def model_step(self, batch: tuple[Any, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, logits and targets of one batch: what every step method shares."""
        inputs, targets = batch
        logits = self(inputs)
        return self.criterion(logits, targets), logits, targets

    def training_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self._train_outputs.append((logits.detach(), targets, loss.detach()))
        self._log_epoch_metrics(TRAIN, self.train_loss, self.train_metrics)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the epoch's last batch: update accuracy, recall and the mean loss with all of its steps at once.

        Accuracy and recall count correct predictions per class, and the loss is the mean of the step losses
        weighted by batch size, so one update gives the numbers of one update per step, at a fraction of the
        cost per step (what a step on cached features mostly is).
        """
        if self._train_outputs and (self.trainer.is_last_batch or batch_idx + 1 >= self.trainer.num_training_batches):
            logits, targets, losses = zip(*self._train_outputs)
            self.train_metrics.update(torch.cat(logits), torch.cat(targets))
            self.train_loss.update(torch.stack(losses), torch.tensor([len(t) for t in targets], device=self.device))
            self._train_outputs.clear()

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx]
        loss, logits, targets = self.model_step(batch)
        self.eval_loss[split].update(loss, len(targets))
        self.eval_metrics[split].update(logits, targets)
        self.eval_confusion[split].update(logits, targets)
        self._log_epoch_metrics(split, self.eval_loss[split], self.eval_metrics[split])

    def _log_epoch_metrics(self, split: str, loss: MeanMetric, metrics: MetricCollection) -> None:
        """Log ``split``'s metric objects once per epoch: Lightning computes, syncs and resets them at its end."""
        if split in self._logged:
            return
        self._logged.add(split)
        self.log_dict({metric_key(split, LOSS): loss, **{metric_key(split, k): m for k, m in metrics.items()}},
                      on_step=False, on_epoch=True, add_dataloader_idx=False)

    def on_train_epoch_start(self) -> None:
        """Keep a frozen backbone in eval mode, so its BatchNorm statistics and dropout stay fixed.

        Frozen means no backbone parameter is trainable *now*: the paper's ``freeze_backbone``, or the
        warm-up of a ``BackboneFinetuning`` callback, which runs its hook before this one and makes
        the backbone trainable (and so back in train mode) from its unfreeze epoch on. (Lightning sets
        submodule modes itself, so overriding ``train()`` would not be enough.)
        """
        self.backbone.train(any(p.requires_grad for p in self.backbone.parameters()))
        self._logged.discard(TRAIN)
        self._train_outputs.clear()

    def on_validation_epoch_start(self) -> None:
        self._logged.difference_update(self.eval_splits)

    def test_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The final evaluation of the chosen checkpoint on the test split (logged as ``test/...``).

        Returns the batch's class probabilities, for callbacks that keep per-image predictions.
        """
        loss, logits, targets = self.model_step(batch)
        self.log(metric_key(TEST, LOSS), loss, on_epoch=True, batch_size=len(targets), sync_dist=True)
        self.final_metrics.update(logits, targets)
        self.final_confusion.update(logits, targets)
        return logits.softmax(dim=-1)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities for the images of ``batch`` (a tensor, or a tuple/list starting with one)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=-1)

    # -- epoch ends -----------------------------------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        for split in self.eval_splits:
            confusion = self.eval_confusion[split].compute()
            per_class = self._per_class_accuracy(confusion)
            self.eval_confusion[split].reset()
            if not self.trainer.sanity_checking:
                # Curves for the loggers only (TensorBoard), from the already synced confusion matrix: straight to
                # them, without self.log's per-key bookkeeping, a cost each epoch of a job on cached features.
                for logger in self.loggers:
                    logger.log_metrics({f"{split}_per_class_acc/{name}": value
                                        for name, value in per_class.items() if value is not None}, self.global_step)
                self.log_dict(self._bin_metrics(confusion, split))

    def on_test_epoch_end(self) -> None:
        summary = self.final_metrics.compute()
        confusion = self.final_confusion.compute()
        self.final_metrics.reset()
        self.final_confusion.reset()
        bins = self._bin_metrics(confusion, TEST)
        self.log_dict({**{metric_key(TEST, k): v for k, v in summary.items()}, **bins})
        self.final_results = {
            metric_key(TEST, ACC): summary[ACC].item(),
            metric_key(TEST, RECALL): summary[RECALL].item(),
            **bins,
            "per_class_acc": self._per_class_accuracy(confusion),
            "confusion_matrix": confusion.tolist(),
        }

    def _bin_metrics(self, confusion: torch.Tensor, split: str) -> dict[str, float]:
        """Bin accuracy and per-bin recall of ``split`` (none without ``class_bins``)."""
        return bin_metrics(confusion, self.class_bins, split) if self.class_bins else {}

    def _per_class_accuracy(self, confusion: torch.Tensor) -> dict[str, float | None]:
        """Recall of each class from a confusion matrix; None for classes absent from the data."""
        support = confusion.sum(dim=1)
        correct = confusion.diagonal()
        return {name: (correct[i] / support[i]).item() if support[i] else None
                for i, name in enumerate(self.class_names)}

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
