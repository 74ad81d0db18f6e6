"""The split is stratified, disjoint, deterministic, and reusable from its manifest."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from garbage_lit.data import DataError, GarbageDataModule
from garbage_lit.data.split import stratified_split

LABELS = [0] * 50 + [1] * 30 + [2] * 20


def test_split_is_stratified_per_class():
    splits = stratified_split(LABELS, test_ratio=0.2, val_ratio=0.25, seed=0)
    counts = Counter(zip(LABELS, splits))
    assert [counts[(c, "test")] for c in range(3)] == [10, 6, 4]
    assert [counts[(c, "val")] for c in range(3)] == [10, 6, 4]
    assert [counts[(c, "train")] for c in range(3)] == [30, 18, 12]


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    first = stratified_split(LABELS, 0.2, seed=3)
    assert stratified_split(LABELS, 0.2, seed=3) == first
    assert stratified_split(LABELS, 0.2, seed=4) != first


def test_tiny_classes_keep_a_training_image():
    assert stratified_split([0, 1, 1], 0.5, seed=0)[0] == "train"


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_test_ratio_outside_open_interval_is_an_error(ratio):
    with pytest.raises(DataError, match="data.test_ratio"):
        stratified_split(LABELS, ratio)


def _datamodule(root, out, **kwargs) -> GarbageDataModule:
    dm = GarbageDataModule(root, batch_size=4, image_size=32, resize_size=36, output_dir=out, **kwargs)
    dm.setup()
    return dm


def test_datamodule_splits_are_disjoint_and_cover_everything(folder_dataset, tmp_path):
    dm = _datamodule(folder_dataset, tmp_path / "a", val_ratio=0.25)
    files = {name: {s.path for s in samples} for name, samples in dm.splits.items()}
    assert not files["train"] & files["test"] and not files["train"] & files["val"] and not files["val"] & files["test"]
    assert len(files["train"] | files["val"] | files["test"]) == 30
    assert dm.eval_splits == ["val", "test"]


def test_manifest_is_written_and_reused_exactly(folder_dataset, tmp_path):
    first = _datamodule(folder_dataset, tmp_path / "a", split_seed=1)
    manifest = tmp_path / "a" / "split_manifest.csv"
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30 and {r["split"] for r in rows} == {"train", "test"}
    assert {r["class_name"] for r in rows} == {"glass", "metal", "paper"}

    # A different seed, but the manifest wins: the same test images.
    reused = _datamodule(folder_dataset, tmp_path / "b", split_seed=99, split_manifest=str(manifest))
    assert [s.path for s in reused.splits["test"]] == [s.path for s in first.splits["test"]]
    assert reused.manifest_sha256 == first.manifest_sha256


def test_manifest_from_other_data_is_rejected(folder_dataset, tmp_path):
    _datamodule(folder_dataset, tmp_path / "a")
    manifest = tmp_path / "a" / "split_manifest.csv"
    (folder_dataset / "glass" / "glass0.jpg").unlink()
    with pytest.raises(DataError, match="glass/glass0.jpg is not a usable image"):
        _datamodule(folder_dataset, tmp_path / "b", split_manifest=str(manifest))


def test_missing_manifest_names_the_key(folder_dataset, tmp_path):
    with pytest.raises(DataError, match="data.split_manifest"):
        _datamodule(folder_dataset, tmp_path / "a", split_manifest=str(tmp_path / "nope.csv"))


def test_batch_size_larger_than_training_set_is_an_error(folder_dataset, tmp_path):
    dm = GarbageDataModule(folder_dataset, batch_size=500, output_dir=tmp_path / "a")
    with pytest.raises(DataError, match="batch_size=500 is larger than the training set"):
        dm.setup()
