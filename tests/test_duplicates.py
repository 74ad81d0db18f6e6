"""Byte-identical images: found at set-up, reported in the run folder, and dedupe never touches test."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from garbage_lit.data import GarbageDataModule
from garbage_lit.data.duplicates import dropped_by_dedupe, find_duplicates
from garbage_lit.data.samples import Sample

from helpers.data import require_shared

TRASHNET_CROSS_CLASS_PAIRS = {
    frozenset({"glass/glass115.jpg", "metal/metal91.jpg"}),
    frozenset({"glass/glass176.jpg", "plastic/plastic152.jpg"}),
    frozenset({"glass/glass389.jpg", "plastic/plastic332.jpg"}),
}


@pytest.mark.slow
def test_trashnet_holds_exactly_three_cross_class_pairs_and_dedupe_keeps_test_whole(tmp_path):
    root = require_shared("trashnet")
    out = tmp_path / "run"
    module = GarbageDataModule(root, output_dir=out, batch_size=4, dedupe=True)
    with pytest.warns(UserWarning, match="3 group.* 3 across classes"):
        module.setup()

    files = [{s.path.relative_to(module.root).as_posix() for s in (module.scan.samples[i] for i in g.members)}
             for g in module.duplicates]
    assert {frozenset(f) for f in files} == TRASHNET_CROSS_CLASS_PAIRS
    with (out / "duplicates.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["file"] for r in rows} == set().union(*TRASHNET_CROSS_CLASS_PAIRS)
    assert all("cross-class" in r["kinds"] for r in rows)
    # Ambiguous labels: every training-side copy is dropped, test copies stay.
    for row in rows:
        assert row["action"] == ("kept" if row["split"] == "test" else "dropped"), row
    used = {s.path.relative_to(module.root).as_posix() for split in module.splits.values() for s in split}
    assert used == {s.path.relative_to(module.root).as_posix() for s in module.scan.samples} - {
        r["file"] for r in rows if r["action"] == "dropped"}
    with (out / "split_manifest.csv").open(encoding="utf-8") as handle:
        manifest_test = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    assert len(module.splits["test"]) == len(manifest_test)


def _samples(*labels_and_digests: tuple[int, str]) -> list[Sample]:
    return [Sample(Path(f"img{i}.jpg"), label, digest) for i, (label, digest) in enumerate(labels_and_digests)]


def test_dedupe_rules_per_kind_of_duplicate():
    samples = _samples(
        (0, "same"), (0, "same"), (0, "same"),   # 0-2: one class, training side only: keep the first
        (0, "leak"), (0, "leak"),                # 3-4: same class across train/test: keep the test copy
        (1, "ambiguous"), (2, "ambiguous"),      # 5-6: two classes, both training: drop both
        (1, "mixed"), (2, "mixed"),              # 7-8: two classes, one in test: keep only the test copy
        (0, "unique"), (1, ""),                  # 9-10: no duplicates (10 was never hashed)
    )
    splits = ["train", "val", "train", "train", "test", "train", "train", "test", "train", "train", "test"]
    groups = find_duplicates(samples, splits)
    assert [(g.members, g.kinds) for g in groups] == [
        ((0, 1, 2), "same-class"), ((3, 4), "train/test"), ((5, 6), "cross-class"),
        ((7, 8), "cross-class;train/test")]
    assert dropped_by_dedupe(groups, splits) == {1, 2, 3, 5, 6, 8}
    assert not {i for i in dropped_by_dedupe(groups, splits) if splits[i] == "test"}


def test_duplicates_without_dedupe_are_reported_and_kept(folder_dataset, tmp_path):
    copy = folder_dataset / "metal" / "copy_of_glass0.jpg"
    copy.write_bytes((folder_dataset / "glass" / "glass0.jpg").read_bytes())
    module = GarbageDataModule(folder_dataset, output_dir=tmp_path / "run", batch_size=4)
    with pytest.warns(UserWarning, match="1 across classes.*all copies kept; data.dedupe=true keeps one"):
        module.setup()
    assert sum(len(v) for v in module.splits.values()) == 31
    rows = list(csv.DictReader((tmp_path / "run" / "duplicates.csv").open(encoding="utf-8")))
    assert sorted(r["file"] for r in rows) == ["glass/glass0.jpg", "metal/copy_of_glass0.jpg"]
    assert {r["action"] for r in rows} == {"kept (data.dedupe=false)"}
