"""Tiny generated datasets (each class its own colour plus noise, so a model can learn them) and the real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.system import missing

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("GARBAGE_LIT_SHARED_DATA", REPO.parent / "shared" / "data"))

CLASS_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def write_image(path: Path, colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A small JPEG of ``colour`` with seeded noise."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def make_folder_dataset(root: Path, class_names: tuple[str, ...] = ("glass", "metal", "paper")) -> Path:
    """10 images per class in the ImageFolder layout (24 training and 6 test images with 3 classes)."""
    for label, name in enumerate(class_names):
        for i in range(10):
            write_image(root / name / f"{name}{i}.jpg", CLASS_COLOURS[label], seed=100 * label + i)
    return root


def make_garbage_classify(root: Path, labels: list[int], num_rule_classes: int = 4) -> Path:
    """A flat garbage_classify folder: img_N.jpg + img_N.txt per label, and a rule json."""
    root.mkdir(parents=True, exist_ok=True)
    for n, label in enumerate(labels, start=1):
        write_image(root / f"img_{n}.jpg", CLASS_COLOURS[label % len(CLASS_COLOURS)], seed=n)
        (root / f"img_{n}.txt").write_text(f"img_{n}.jpg, {label}")
    rule = {str(i): f"group/class{i}" for i in range(num_rule_classes)}
    (root / "garbage_classify_rule.json").write_text(json.dumps(rule, ensure_ascii=False))
    return root


def require_shared(*parts: str) -> Path:
    """A path under ../shared/data; skip when absent unless GARBAGE_LIT_REQUIRE_SHARED=1 (CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        missing(f"real data {path} not present (it sits beside the checkout in ../shared/data)",
                "GARBAGE_LIT_REQUIRE_SHARED")
    return path
