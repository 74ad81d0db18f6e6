"""The paper's preprocessing, and an optional stronger training augmentation, from torchvision transforms.

The paper's pipeline has two parts: the deterministic geometry (resize, center crop), which the
decoded-image cache computes once per image, and the per-epoch part (random rotation on training
images, to tensor, scaling to float, normalisation), which always runs. Both work on PIL images,
whose uint8 kernels rotate many times faster than the float path tensors take.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import InterpolationMode, v2

from garbage_lit.errors import ConfigError

AUGMENTATIONS = ("paper", "strong")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # what torchvision weights and timm pretrained configs name
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def interpolation_mode(interpolation: str) -> InterpolationMode:
    """The torchvision mode named by ``data.interpolation``; an error lists the accepted names."""
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"data.interpolation={interpolation!r} is not known; "
                         f"choose one of {', '.join(INTERPOLATIONS)}")
    return InterpolationMode(interpolation)


def kept_margin(image_size: int, base_image_size: int, base_resize_size: int) -> int:
    """The resize size that keeps a preprocessing's margin at another crop size (224/256 at 260 px: 297)."""
    return round(image_size * base_resize_size / base_image_size)


def geometry_transforms(image_size: int = 224, resize_size: int = 256, interpolation: str = "bilinear") -> v2.Compose:
    """Shorter side resized to ``resize_size``, then center-cropped to ``image_size`` (PIL in, PIL out)."""
    return v2.Compose([v2.Resize(resize_size, interpolation_mode(interpolation), antialias=True),
                       v2.CenterCrop(image_size)])


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def epoch_transforms(train: bool, rotation_degrees: float = 15.0, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """(train only) random rotation, then to a float tensor in [0, 1], normalized."""
    steps: list[v2.Transform] = [v2.RandomRotation(rotation_degrees)] if train and rotation_degrees else []
    return v2.Compose(steps + _to_normalized_tensor(mean, std))


def strong_train_transforms(image_size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                            std: Sequence[float] = IMAGENET_STD, interpolation: str = "bilinear") -> v2.Compose:
    """RandomResizedCrop, horizontal flip and TrivialAugmentWide, for fine-tuning the whole network."""
    crop = v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), interpolation=interpolation_mode(interpolation),
                                antialias=True)
    return v2.Compose([crop,
                       v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(), *_to_normalized_tensor(mean, std)])


def build_transforms(train: bool, image_size: int = 224, resize_size: int = 256, rotation_degrees: float = 15.0,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     augment: str = "paper", interpolation: str = "bilinear") -> v2.Compose:
    """Evaluation: resize (with ``interpolation``), center crop, to tensor, normalize.

    Training with ``augment="paper"`` adds the paper's random rotation after the crop; with
    ``augment="strong"`` it uses :func:`strong_train_transforms` instead (see ``experiment=finetune``).
    """
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"data.augment={augment!r} is not known; choose one of {', '.join(AUGMENTATIONS)}")
    if train and augment == "strong":
        return strong_train_transforms(image_size, mean, std, interpolation)
    return v2.Compose([geometry_transforms(image_size, resize_size, interpolation),
                       epoch_transforms(train, rotation_degrees, mean, std)])
