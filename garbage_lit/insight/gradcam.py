"""Grad-CAM heat maps (pytorch-grad-cam, the ``insight`` extra): where in a photo the predicted class came from.

The target layer is found, not configured: the last module of the backbone whose output is still a spatial
feature map (N, C, H, W with H, W > 1), i.e. the block right before global pooling, whatever the architecture.
A module the forward pass calls more than once (efficientnet_lite's one shared activation, used from the stem on)
is passed over: Grad-CAM would read its first call, the stem's.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from garbage_lit.data.images import load_rgb
from garbage_lit.data.transforms import geometry_transforms
from garbage_lit.errors import ConfigError
from garbage_lit.insight.label_issues import INSTALL


def last_spatial_layer(backbone: nn.Module, image_size: int) -> nn.Module:
    """The module, called once per forward pass, that finishes last among those returning a spatial map
    (N, C, H, W with H and W > 1)."""
    finished: list[nn.Module] = []
    calls: dict[nn.Module, int] = {}

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        calls[module] = calls.get(module, 0) + 1
        if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-1] > 1 and output.shape[-2] > 1:
            finished.append(module)

    hooks = [module.register_forward_hook(record) for module in backbone.modules() if module is not backbone]
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, 3, image_size, image_size, device=next(backbone.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    once = [module for module in finished if calls[module] == 1]
    if not once:
        raise ValueError(f"{type(backbone).__name__} has no layer with a spatial output for Grad-CAM")
    return once[-1]


def gradcam_overlays(model: nn.Module, paths: Sequence[Path], classes: Sequence[int], preprocessing: dict,
                     batch_size: int = 16) -> list[np.ndarray]:
    """For each photo, its center crop (as the model sees it) with the Grad-CAM map of ``classes[i]`` over it."""
    if importlib.util.find_spec("pytorch_grad_cam") is None:
        raise ConfigError(f"gradcam=true needs the grad-cam package: {INSTALL}")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    crop = geometry_transforms(preprocessing["image_size"], preprocessing["resize_size"],
                               preprocessing["interpolation"])
    to_input = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(mean=preprocessing["mean"], std=preprocessing["std"])])
    layer = last_spatial_layer(model.backbone, preprocessing["image_size"])
    overlays = []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for start in range(0, len(paths), batch_size):
            crops = [crop(load_rgb(path)) for path in paths[start:start + batch_size]]
            # Gradients must reach the layer's output although a frozen backbone's weights need none: from the input.
            heat = cam(input_tensor=torch.stack([to_input(c) for c in crops]).requires_grad_(True),
                       targets=[ClassifierOutputTarget(c) for c in classes[start:start + batch_size]])
            overlays += [show_cam_on_image(np.asarray(c, dtype=np.float32) / 255, h, use_rgb=True) / 255
                         for c, h in zip(crops, heat)]
    return overlays
