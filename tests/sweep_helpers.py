"""Run `python -m garbage_lit.train -m ...` sweeps on tiny data in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import CLASS_COLOURS, write_image

# The make_cfg fixture's fast settings, as command-line overrides.
FAST = ["model=resnet18", "model.weights=none", "data.image_size=32", "data.resize_size=36",
        "trainer.enable_model_summary=false", "+trainer.enable_progress_bar=false"]


def tiny_folder_dataset(root: Path) -> Path:
    """3 classes x 10 small images (ImageFolder layout): 24 training and 6 test images."""
    for label, name in enumerate(["glass", "metal", "paper"]):
        for i in range(10):
            write_image(root / name / f"{name}{i}.jpg", CLASS_COLOURS[label], seed=100 * label + i)
    return root


def run_sweep(sweep_dir: Path, data_root: Path, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """A multirun on ``data_root`` into ``sweep_dir``; returns the finished process (output captured)."""
    command = [sys.executable, "-m", "garbage_lit.train", "-m", *FAST, "data=folder", f"data.root={data_root}",
               *overrides, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(sweep_dir.parent / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=sweep_dir.parent, env=env, capture_output=True, text=True, timeout=timeout)
