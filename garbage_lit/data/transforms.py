"""The paper's preprocessing, built from torchvision transforms.

It has two parts: the deterministic geometry (resize, center crop), which the decoded-image cache
computes once per image, and the per-epoch part (random rotation on training images, to tensor,
scaling to float, normalisation), which always runs. Both work on PIL images, whose uint8 kernels
rotate many times faster than the float path tensors take.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2


def geometry_transforms(image_size: int = 224, resize_size: int = 256) -> v2.Compose:
    """Shorter side resized to ``resize_size``, then center-cropped to ``image_size`` (PIL in, PIL out)."""
    return v2.Compose([v2.Resize(resize_size, antialias=True), v2.CenterCrop(image_size)])


def epoch_transforms(train: bool, rotation_degrees: float = 15.0, mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225)) -> v2.Compose:
    """(train only) random rotation, then to a float tensor in [0, 1], normalized."""
    steps: list[v2.Transform] = []
    if train and rotation_degrees:
        steps.append(v2.RandomRotation(rotation_degrees))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(steps)


def build_transforms(train: bool, image_size: int = 224, resize_size: int = 256, rotation_degrees: float = 15.0,
                     mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225)) -> v2.Compose:
    """Resize, center crop, (train only) random rotation, to tensor, normalize."""
    return v2.Compose([geometry_transforms(image_size, resize_size),
                       epoch_transforms(train, rotation_degrees, mean, std)])
