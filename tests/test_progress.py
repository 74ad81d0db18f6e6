"""Progress bars of the long data steps: shown with rate and count on a terminal, silent otherwise."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from garbage_lit.data import scan as scan_module
from garbage_lit.data.scan import scan_dataset
from garbage_lit.features.cache import extract_features


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _fill(path: Path) -> None:
    images = TensorDataset(torch.rand(10, 3, 8, 8), torch.zeros(10, dtype=torch.long))
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(192, 4))
    extract_features(backbone, images, views=2, path=path, batch_size=4)


def test_feature_fill_shows_a_bar_on_a_terminal(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fill(tmp_path / "features.npy")
    out = terminal.getvalue()
    assert "filling feature cache" in out and "20/20" in out and "img/s" in out


def test_feature_fill_is_silent_when_stderr_is_not_a_terminal(tmp_path, capsys):
    _fill(tmp_path / "features.npy")
    assert "filling feature cache" not in capsys.readouterr().err


def test_scan_bar_only_for_long_scans(folder_dataset, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    scan_dataset(folder_dataset, "folder")
    assert "scanning images" not in terminal.getvalue()  # 30 images: below SCAN_PROGRESS_MIN
    monkeypatch.setattr(scan_module, "SCAN_PROGRESS_MIN", 30)
    scan_dataset(folder_dataset, "folder")
    assert "scanning images" in terminal.getvalue() and "30/30" in terminal.getvalue()
