"""The paper's preprocessing, and an optional stronger training augmentation, from torchvision transforms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

AUGMENTATIONS = ("paper", "strong")


def build_transforms(train: bool, image_size: int = 224, resize_size: int = 256, rotation_degrees: float = 15.0,
                     mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225), augment: str = "paper") -> v2.Compose:
    """Evaluation: resize, center crop, to tensor, normalize.

    Training with ``augment="paper"`` adds the paper's random rotation after the crop; with
    ``augment="strong"`` the crop becomes RandomResizedCrop, followed by a horizontal flip and
    TrivialAugmentWide (for fine-tuning the whole network, see ``experiment=finetune``).
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"data.augment={augment!r} is not known; choose one of {', '.join(AUGMENTATIONS)}")
    if train and augment == "strong":
        steps: list[v2.Transform] = [v2.ToImage(), v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
                                     v2.RandomHorizontalFlip(), v2.TrivialAugmentWide()]
    else:
        steps = [v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(image_size)]
        if train and rotation_degrees:
            steps.append(v2.RandomRotation(rotation_degrees))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(steps)
