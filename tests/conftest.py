"""Shared fixtures: tiny generated datasets, composed Hydra configs, and the optional real data."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict
from PIL import Image

from garbage_lit.config import register_resolvers

register_resolvers()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GARBAGE_LIT_SHARED_DATA", REPO.parent / "shared" / "data"))

# Small, learnable images: each class has its own base colour plus noise.
CLASS_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def write_image(path: Path, colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def make_folder_dataset(root: Path, class_names: tuple[str, ...] = ("glass", "metal", "paper")) -> Path:
    """10 images per class in the ImageFolder layout."""
    for label, name in enumerate(class_names):
        for i in range(10):
            write_image(root / name / f"{name}{i}.jpg", CLASS_COLOURS[label], seed=100 * label + i)
    return root


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """3 classes x 10 images in the ImageFolder layout."""
    return make_folder_dataset(tmp_path / "folder_data")


def make_garbage_classify(root: Path, labels: list[int], num_rule_classes: int = 4) -> Path:
    """A flat garbage_classify folder: img_N.jpg + img_N.txt per label, and a rule json."""
    root.mkdir(parents=True, exist_ok=True)
    for n, label in enumerate(labels, start=1):
        write_image(root / f"img_{n}.jpg", CLASS_COLOURS[label % len(CLASS_COLOURS)], seed=n)
        (root / f"img_{n}.txt").write_text(f"img_{n}.jpg, {label}")
    rule = {str(i): f"group/class{i}" for i in range(num_rule_classes)}
    (root / "garbage_classify_rule.json").write_text(json.dumps(rule, ensure_ascii=False))
    return root


@pytest.fixture
def garbage_classify_dataset(tmp_path: Path) -> Path:
    """4 rule classes, 3 of them used, 8 images each."""
    return make_garbage_classify(tmp_path / "gc_data", [label for label in (0, 1, 3) for _ in range(8)])


def compose_fast_cfg(base_dir: Path, *overrides: str, output_dir: Path | None = None) -> DictConfig:
    """The real training config with small, fast settings, writing under ``base_dir``; extra overrides win."""
    fast = ["model=resnet18", "model.weights=none", "epochs=1", "batch_size=4", "data.image_size=32",
            "data.resize_size=36", "trainer.enable_model_summary=false", "+trainer.enable_progress_bar=false"]
    with initialize_config_module(config_module="garbage_lit.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*fast, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or base_dir / "run")
        cfg.paths.cache_dir = str(base_dir / "cache")
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the real training config with small, fast settings; extra overrides win."""

    def _make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_fast_cfg(tmp_path, *overrides, output_dir=output_dir)

    return _make


def require_shared(*parts: str) -> Path:
    """A path under ../shared/data; skip when absent unless GARBAGE_LIT_REQUIRE_SHARED=1 (CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("GARBAGE_LIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"{path} is required in CI (GARBAGE_LIT_REQUIRE_SHARED=1) but is missing")
        pytest.skip(f"real data {path} not present (it sits beside the checkout in ../shared/data)")
    return path
