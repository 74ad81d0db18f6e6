"""Tests that need something outside the repository (real data, a SLURM cluster, Chromium, mounting a file
system): skipped with a reason, mandatory in CI, where `.ci/run` sets the matching GARBAGE_LIT_REQUIRE_* variable."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def missing(reason: str, require_env: str) -> None:
    """Skip the test because of ``reason``; fail instead when ``$require_env`` is 1 (`.ci/run` sets it)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{reason}; it is required here ({require_env}=1)")
    pytest.skip(f"{reason} (set {require_env}=1 to make this a failure)")


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``4m``) mounted at ``path`` for the block, to fill a disk on purpose.

    Mounting needs root (or CAP_SYS_ADMIN): skipped otherwise, unless GARBAGE_LIT_REQUIRE_MOUNT=1. The test
    may unmount it early with :func:`unmount` (the disk is gone); it is unmounted at the end otherwise.
    """
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                 capture_output=True, text=True)
        refusal = (mounted.stderr.strip().splitlines() or ["mount failed"])[0] if mounted.returncode else None
    except FileNotFoundError:
        refusal = "no mount command"
    if refusal is not None:
        missing(f"cannot mount a {size} tmpfs to fill up as a full disk ({refusal}); it needs root",
                "GARBAGE_LIT_REQUIRE_MOUNT")
    try:
        yield path
    finally:
        unmount(path)


def unmount(path: Path) -> None:
    """Unmount the file system at ``path`` (when one is mounted there): everything on it is gone."""
    if os.path.ismount(path):
        subprocess.run(["umount", str(path)], check=True)
