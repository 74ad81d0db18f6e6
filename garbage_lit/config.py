"""OmegaConf resolvers the configs use, registered before Hydra composes anything."""

from __future__ import annotations

from pathlib import Path

from omegaconf import ListConfig, OmegaConf

SAMPLE_DATA = Path(__file__).parent / "sample_data" / "trashnet_mini"


def _backbone_normalization(backbone: str, which: str) -> ListConfig:
    from garbage_lit.models.backbones import get_spec

    return OmegaConf.create(list(getattr(get_spec(backbone), which)))


def register_resolvers() -> None:
    """``${gl.sample_data:}``, ``${gl.mean:BACKBONE}``, ``${gl.std:BACKBONE}``."""
    resolvers = {
        "gl.sample_data": lambda: str(SAMPLE_DATA),
        "gl.mean": lambda backbone: _backbone_normalization(backbone, "mean"),
        "gl.std": lambda backbone: _backbone_normalization(backbone, "std"),
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
