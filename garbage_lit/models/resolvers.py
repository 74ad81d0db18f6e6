"""The resolvers the configs use: ``${gl.sample_data:}`` and each backbone's own preprocessing, read from its zoo
(``${gl.image_size:efficientnet_lite0,efficientnet_lite}``), so ``data.*`` follows ``model.arch``."""

from __future__ import annotations

from omegaconf import ListConfig, OmegaConf

from garbage_lit.config import SAMPLE_DATA
from garbage_lit.models.backbones import backbone_preprocessing

PREPROCESSING_RESOLVERS = ("image_size", "resize_size", "interpolation", "mean", "std")


def _backbone_preprocessing(which: str, arch: str, zoo: str | None = None) -> int | str | ListConfig:
    value = getattr(backbone_preprocessing(arch, zoo), which)
    return OmegaConf.create(list(value)) if isinstance(value, tuple) else value


def register_resolvers() -> None:
    """``${gl.sample_data:}`` and ``${gl.<key>:ARCH[,ZOO]}`` for each key of PREPROCESSING_RESOLVERS."""
    resolvers = {"gl.sample_data": lambda: str(SAMPLE_DATA)}
    for which in PREPROCESSING_RESOLVERS:
        resolvers[f"gl.{which}"] = lambda arch, zoo=None, which=which: _backbone_preprocessing(which, arch, zoo)
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


