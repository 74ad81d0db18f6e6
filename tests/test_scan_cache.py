"""The scan cache: same results as a full scan, changed files read again, a corrupt cache never breaks a run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from garbage_lit.data import GarbageDataModule
from garbage_lit.data import scan as scan_module
from garbage_lit.data.scan import RECORDS_FORMAT, ImageCheck, records_path, scan_dataset

from helpers.data import write_image


def _with_bad_files(root: Path) -> Path:
    (root / "glass" / "empty.jpg").write_bytes(b"")
    (root / "metal" / "text.jpg").write_text("not an image")
    return root


def _counting_checks(monkeypatch) -> list[Path]:
    """Record every file the scan actually reads."""
    seen: list[Path] = []
    real = scan_module.check_image

    def check(path: Path) -> ImageCheck:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(scan_module, "check_image", check)
    return seen


def test_cached_scan_gives_the_same_result_and_reads_no_file_again(folder_dataset, tmp_path, monkeypatch):
    root = _with_bad_files(folder_dataset)
    plain = scan_dataset(root, "folder")
    seen = _counting_checks(monkeypatch)
    first = scan_dataset(root, "folder", cache_dir=tmp_path / "cache")
    assert len(seen) == 32
    second = scan_dataset(root, "folder", cache_dir=tmp_path / "cache")
    assert len(seen) == 32  # the second scan read nothing
    assert first.samples == second.samples == plain.samples
    assert first.problems == second.problems == plain.problems
    assert {p.file for p in second.problems} == {"glass/empty.jpg", "metal/text.jpg"}
    assert records_path(tmp_path / "cache", root).is_file()


def test_a_changed_file_is_read_again(folder_dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    before = {s.path.name: s.sha256 for s in scan_dataset(folder_dataset, "folder", cache_dir=cache).samples}
    changed = folder_dataset / "paper" / "paper3.jpg"
    write_image(changed, (10, 10, 10), seed=999)  # new bytes (and size, mtime)
    touched = folder_dataset / "glass" / "glass1.jpg"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same bytes, newer mtime
    seen = _counting_checks(monkeypatch)
    after = {s.path.name: s.sha256 for s in scan_dataset(folder_dataset, "folder", cache_dir=cache).samples}
    assert sorted(p.name for p in seen) == ["glass1.jpg", "paper3.jpg"]
    assert after["paper3.jpg"] != before["paper3.jpg"]
    assert {k: v for k, v in after.items() if k != "paper3.jpg"} == {k: v for k, v in before.items()
                                                                    if k != "paper3.jpg"}


def test_a_corrupt_cache_falls_back_to_a_full_scan_and_is_rewritten(folder_dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    expected = scan_dataset(folder_dataset, "folder", cache_dir=cache)
    records = records_path(cache, folder_dataset)
    for garbage in ("{not json", '{"format": "garbage_lit scan records v1", "pillow": "x"}', "[1, 2]"):
        records.write_text(garbage)
        seen = _counting_checks(monkeypatch)
        assert scan_dataset(folder_dataset, "folder", cache_dir=cache).samples == expected.samples
        assert len(seen) == 30
    seen.clear()
    assert scan_dataset(folder_dataset, "folder", cache_dir=cache).samples == expected.samples
    assert seen == []  # the rewritten records serve the next scan


def test_data_module_keeps_scan_records_in_cache_dir_unless_turned_off(folder_dataset, tmp_path):
    GarbageDataModule(folder_dataset, batch_size=4, cache_dir=tmp_path / "on").setup()
    GarbageDataModule(folder_dataset, batch_size=4, cache_dir=tmp_path / "off", scan_cache=False).setup()
    assert records_path(tmp_path / "on", folder_dataset).is_file()
    assert not (tmp_path / "off").exists()


def test_records_keep_each_image_size_so_a_cached_scan_still_finds_tiny_images(folder_dataset, tmp_path, monkeypatch):
    Image.new("RGB", (8, 8), (200, 40, 40)).save(folder_dataset / "glass" / "thumb.png")
    cache = tmp_path / "cache"
    first = scan_dataset(folder_dataset, "folder", cache_dir=cache)
    seen = _counting_checks(monkeypatch)
    second = scan_dataset(folder_dataset, "folder", cache_dir=cache)
    assert seen == []
    assert [(p.file, p.action) for p in second.problems] == [(p.file, p.action) for p in first.problems] == [
        ("glass/thumb.png", "kept")]
    assert "tiny image (8x8 px" in second.problems[0].problem


def test_records_of_the_format_without_sizes_are_checked_again(folder_dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    scan_dataset(folder_dataset, "folder", cache_dir=cache)
    records = records_path(cache, folder_dataset)
    data = json.loads(records.read_text())
    old = {**data, "format": "garbage_lit scan records v1",
           "files": {path: record[:4] for path, record in data["files"].items()}}  # size, mtime, sha256, problem
    records.write_text(json.dumps(old))
    seen = _counting_checks(monkeypatch)
    scan_dataset(folder_dataset, "folder", cache_dir=cache)
    assert len(seen) == 30
    assert json.loads(records.read_text())["format"] == RECORDS_FORMAT
