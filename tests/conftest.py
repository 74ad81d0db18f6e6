"""Fixtures: tiny generated datasets and the composed fast training config (helpers live in tests/helpers/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from garbage_lit.models.resolvers import register_resolvers

from helpers.browser import headless_chromium
from helpers.config import compose_fast_cfg
from helpers.data import make_folder_dataset, make_garbage_classify

register_resolvers()


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """3 classes x 10 images in the ImageFolder layout."""
    return make_folder_dataset(tmp_path / "folder_data")


@pytest.fixture
def garbage_classify_dataset(tmp_path: Path) -> Path:
    """4 rule classes, 3 of them used, 8 images each."""
    return make_garbage_classify(tmp_path / "gc_data", [label for label in (0, 1, 3) for _ in range(8)])


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the real training config with debug=fast; extra overrides win."""

    def _make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_fast_cfg(tmp_path, *overrides, output_dir=output_dir)

    return _make


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium driven by selenium (skipped without it, unless GARBAGE_LIT_REQUIRE_BROWSER=1)."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never download a browser or driver
    with headless_chromium() as driver:
        yield driver
