"""The paper's preprocessing, built from torchvision transforms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2


def build_transforms(train: bool, image_size: int = 224, resize_size: int = 256, rotation_degrees: float = 15.0,
                     mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225)) -> v2.Compose:
    """Resize, center crop, (train only) random rotation, to tensor, normalize."""
    steps: list[v2.Transform] = [v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(image_size)]
    if train and rotation_degrees:
        steps.append(v2.RandomRotation(rotation_degrees))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(steps)
