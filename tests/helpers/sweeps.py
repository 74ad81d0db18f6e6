"""Run `python -m garbage_lit.train -m ...` sweeps on tiny data in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_sweep(sweep_dir: Path, data_root: Path, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """A multirun on ``data_root`` into ``sweep_dir``; returns the finished process (output captured)."""
    command = [sys.executable, "-m", "garbage_lit.train", "-m", "debug=fast", "data=folder", f"data.root={data_root}",
               *overrides, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(sweep_dir.parent / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=sweep_dir.parent, env=env, capture_output=True, text=True, timeout=timeout)
