"""Linear-probe warm-up, then fine-tuning of the whole backbone."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BackboneFinetuning


class LinearProbeThenFinetune(BackboneFinetuning):
    """Lightning's ``BackboneFinetuning`` with a true linear probe before ``unfreeze_backbone_at_epoch``.

    The stock callback leaves BatchNorm layers trainable while the backbone is "frozen", so the
    warm-up would also train them (and the classifier would keep the backbone in train mode).
    Here the whole backbone is frozen until the unfreeze epoch; ``train_bn`` then decides whether
    the BatchNorm weights join the backbone's param group.
    """

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.backbone, train_bn=False)
