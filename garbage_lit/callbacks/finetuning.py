"""Linear-probe warm-up, then fine-tuning of the whole backbone (but its frozen stages)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BackboneFinetuning
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from garbage_lit.training.optimizers import LR_SCALE, NAME

log = logging.getLogger(__name__)

BACKBONE = "backbone"  # the backbone's param groups' names start with it


class LinearProbeThenFinetune(BackboneFinetuning):
    """Lightning's ``BackboneFinetuning`` with a true linear probe before ``unfreeze_backbone_at_epoch``, and the
    backbone's param groups built by the model's optimizer factory.

    The stock callback leaves BatchNorm layers trainable while the backbone is "frozen", so the warm-up would also
    train them (and the classifier would keep the backbone in train mode). Here the whole backbone is frozen until the
    unfreeze epoch. Then its stages but the model's ``frozen_stages`` become trainable (``train_bn``: BatchNorm
    weights too) and join the optimizer as the factory groups them: norm parameters and biases without weight decay,
    per-stage learning rates with ``optim.layer_decay``. Their rate starts at ``backbone_initial_ratio_lr`` of the
    head's, grows by ``lambda_func`` each epoch and, with ``should_align``, stops at the head's (Lightning's schedule),
    each group at its own share of it.
    """

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.backbone, train_bn=False)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed run gets its param groups back (Lightning's restore); when they hold the backbone's, the backbone
        is trainable again, as it was when the run stopped (Lightning calls the unfreeze only at its epoch)."""
        super().on_fit_start(trainer, pl_module)
        if any(str(group.get(NAME, "")).startswith(BACKBONE) for optimizer in trainer.optimizers
               for group in optimizer.param_groups):
            self._make_backbone_trainable(pl_module)

    def _make_backbone_trainable(self, pl_module: pl.LightningModule) -> None:
        """The backbone's parameters trainable (its BatchNorm's only with ``train_bn``), but its frozen stages."""
        self.make_trainable(pl_module.backbone)
        if not self.train_bn:
            for module in pl_module.backbone.modules():
                if isinstance(module, _BatchNorm):
                    self.freeze_module(module)
        pl_module.freeze_stages()

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        """Unfreeze at ``unfreeze_backbone_at_epoch``; afterwards move the backbone groups' rate towards the head's."""
        head_lr = optimizer.param_groups[0]["lr"]
        if epoch == self.unfreeze_backbone_at_epoch:
            backbone_lr = self.backbone_initial_lr if self.backbone_initial_lr is not None \
                else head_lr * self.backbone_initial_ratio_lr
            self._make_backbone_trainable(pl_module)
            for group in pl_module.optimizer_factory.param_groups(pl_module.backbone, BACKBONE, backbone_lr,
                                                                  pl_module.stages):
                optimizer.add_param_group(group)
        elif epoch > self.unfreeze_backbone_at_epoch:
            backbone_lr = self.lambda_func(epoch + 1) * self.previous_backbone_lr
            if self.should_align and backbone_lr > head_lr:
                backbone_lr = head_lr
            for group in optimizer.param_groups:
                if str(group.get(NAME, "")).startswith(BACKBONE):
                    group["lr"] = backbone_lr * group[LR_SCALE]
        else:
            return
        self.previous_backbone_lr = backbone_lr
        if self.verbose:
            log.info("epoch %d: head lr %.3g, backbone lr %.3g", epoch, head_lr, backbone_lr)
