"""Tests that need something outside the repository (real data, a SLURM cluster, Chromium): skipped with a reason,
mandatory in CI, where `.ci/run` sets the matching GARBAGE_LIT_REQUIRE_* variable."""

from __future__ import annotations

import os

import pytest


def missing(reason: str, require_env: str) -> None:
    """Skip the test because of ``reason``; fail instead when ``$require_env`` is 1 (`.ci/run` sets it)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{reason}; it is required here ({require_env}=1)")
    pytest.skip(f"{reason} (set {require_env}=1 to make this a failure)")
