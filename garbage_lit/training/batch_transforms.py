"""Batch-level augmentation: transforms of a whole training batch ``(images, labels)`` into mixed images and soft
labels (class probabilities), which the classifier's loss takes as they are and its metrics read as their most
likely class. Each is a ``data/batch_transform`` config: a partial taking ``num_classes``; the data module applies it
to each training batch once it is on the device, and stops at ``data.batch_transform_off_epoch`` (as timm's
``mixup_off_epoch``: the last epochs train on clean images)."""

from __future__ import annotations

from torchvision.transforms import v2


def mixup_or_cutmix(num_classes: int, mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0) -> v2.RandomChoice:
    """MixUp or CutMix, drawn per batch (torchvision's classification recipe; ``data/batch_transform=mixup_cutmix``)."""
    return v2.RandomChoice([v2.MixUp(alpha=mixup_alpha, num_classes=num_classes),
                            v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes)])
