"""A run's parts built from its config where two sections of it meet: the data module takes ``data.*`` and the
caches' settings (``cache.*``), so ``train``, ``audit``, the tests and the benchmarks build it one way."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from garbage_lit.data.datamodule import GarbageDataModule


def data_module(cfg: DictConfig, **overrides: Any) -> GarbageDataModule:
    """``cfg.data``'s data module, with the scan and image caches of ``cfg.cache`` (and ``overrides``)."""
    return instantiate(cfg.data, **{"cache_dir": cfg.cache.dir, "scan_cache": cfg.cache.scan,
                                    "image_cache": cfg.cache.images, **overrides})
