"""The resolvers the configs use: ``${gl.sample_data:}``, each backbone's own preprocessing, read from its zoo
(``${gl.image_size:efficientnet_lite0,efficientnet_lite}``), so ``data.*`` follows ``model.arch``, and
``${gl.mixed_precision:}``, the fastest training precision of this machine."""

from __future__ import annotations

import torch
from omegaconf import ListConfig, OmegaConf

from garbage_lit.config import SAMPLE_DATA
from garbage_lit.models.backbones import backbone_preprocessing

PREPROCESSING_RESOLVERS = ("image_size", "resize_size", "interpolation", "mean", "std")


def _backbone_preprocessing(which: str, arch: str, zoo: str | None = None) -> int | str | ListConfig:
    value = getattr(backbone_preprocessing(arch, zoo), which)
    return OmegaConf.create(list(value)) if isinstance(value, tuple) else value


def mixed_precision() -> str:
    """Lightning's precision that trains fastest here: ``bf16-mixed`` on a GPU with bf16 (Ampere and newer) and on a
    CPU oneDNN runs bf16 on (avx512_bf16, AMX), ``16-mixed`` on older GPUs, else ``32-true``."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() \
        else "32-true"


def register_resolvers() -> None:
    """``${gl.sample_data:}``, ``${gl.mixed_precision:}`` and ``${gl.<key>:ARCH[,ZOO]}`` for each key of
    PREPROCESSING_RESOLVERS."""
    resolvers = {"gl.sample_data": lambda: str(SAMPLE_DATA), "gl.mixed_precision": mixed_precision}
    for which in PREPROCESSING_RESOLVERS:
        resolvers[f"gl.{which}"] = lambda arch, zoo=None, which=which: _backbone_preprocessing(which, arch, zoo)
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


