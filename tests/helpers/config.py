"""The real configs: training composed with ``debug=fast`` (conf/debug/fast.yaml), and the other apps,
writing under a test folder."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from garbage_lit.config import CONFIG_DIR


def compose_fast_cfg(base_dir: Path, *overrides: str, output_dir: Path | None = None) -> DictConfig:
    """The training config with ``debug=fast``, writing under ``base_dir``; extra overrides win."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["debug=fast", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or base_dir / "run")
        cfg.cache.dir = str(base_dir / "cache")
    return cfg

def compose_app(config_name: str, output_dir: Path, *overrides: str) -> DictConfig:
    """The config of the evaluate / predict / export apps, writing into ``output_dir``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg
