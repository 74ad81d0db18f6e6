"""The split is stratified, disjoint, deterministic, and reusable from its manifest."""

from __future__ import annotations

import csv
import logging
import warnings
from collections import Counter

import pytest

from garbage_lit.config import SAMPLE_DATA
from garbage_lit.data import GarbageDataModule
from garbage_lit.data.split import images_to_reach, split_counts, stratified_split
from garbage_lit.errors import DataError

from helpers.data import write_image

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


# -- splits that cannot serve training, and classes they never measure -------------------------------------
@pytest.mark.parametrize("test_ratio, val_ratio", [(0.2, 0.0), (0.2, 0.1), (0.1, 0.25), (0.5, 0.5), (0.05, 0.9)])
def test_images_to_reach_is_the_fewest_a_class_needs_for_one_image_in_that_split(test_ratio, val_ratio):
    needs = images_to_reach("test", test_ratio, val_ratio)
    assert split_counts(needs, test_ratio, val_ratio)[0] == 1 and split_counts(needs - 1, test_ratio, val_ratio)[0] == 0
    if val_ratio:
        needs = images_to_reach("val", test_ratio, val_ratio)
        assert split_counts(needs, test_ratio, val_ratio)[1] >= 1 > split_counts(needs - 1, test_ratio, val_ratio)[1]
    assert (images_to_reach("test", 0.2, 0.0), images_to_reach("val", 0.2, 0.1)) == (3, 7)


def test_a_val_ratio_that_leaves_too_few_training_images_is_named_not_the_batch_size():
    # The bundled sample (180 images): val_ratio=0.9 trains on 12 images against 132 validation images.
    dm = GarbageDataModule(SAMPLE_DATA, batch_size=32, val_ratio=0.9, image_size=32, resize_size=36)
    with pytest.raises(DataError) as error:
        dm.setup()
    assert str(error.value) == ("batch_size=32 is larger than the training set (12 images: data.val_ratio=0.9 holds "
                                "out 132 of the 144 images left after the test split for validation); lower "
                                "data.val_ratio (e.g. 0.1), or set batch_size between 1 and 12")


def test_a_training_split_smaller_than_the_others_is_warned_naming_the_ratio(folder_dataset, tmp_path):
    dm = GarbageDataModule(folder_dataset, batch_size=2, val_ratio=0.9, image_size=32, resize_size=36)
    with pytest.warns(UserWarning, match="the training split") as caught:
        dm.setup()
    assert {name: len(v) for name, v in dm.splits.items()} == {"train": 3, "val": 21, "test": 6}
    (message,) = [str(w.message) for w in caught if "training split" in str(w.message)]
    assert message == ("the training split (3 images) is smaller than the validation split (21) and the test split "
                       "(6): data.val_ratio=0.9 holds out 21 of the 24 images left after the test split for "
                       "validation; lower data.val_ratio (e.g. 0.1)")


def test_a_training_split_smaller_than_the_test_split_names_data_test_ratio(folder_dataset, tmp_path):
    with pytest.warns(UserWarning, match="the training split") as caught:
        dm = _datamodule(folder_dataset, tmp_path / "a", test_ratio=0.6)
    assert {name: len(v) for name, v in dm.splits.items()} == {"train": 12, "val": 0, "test": 18}
    (message,) = [str(w.message) for w in caught if "training split" in str(w.message)]
    assert message == ("the training split (12 images) is smaller than the test split (18): data.test_ratio=0.6 "
                       "holds out 18 of the 30 images for testing; lower data.test_ratio (e.g. 0.2)")


def test_a_class_too_small_to_be_tested_is_warned_and_refused_under_strict(folder_dataset, tmp_path):
    write_image(folder_dataset / "battery" / "one.jpg", (90, 90, 90), seed=7)
    with pytest.warns(UserWarning, match=r"\(class kept, never tested\), e.g. class battery: 1 image\(s\): "
                                         r"train 1, val 0, test 0; a class needs 3 images to reach the test split "
                                         r"\(data.test_ratio=0.2\)"):
        dm = _datamodule(folder_dataset, tmp_path / "a")
    assert [s.path.name for s in dm.splits["train"] if s.path.parent.name == "battery"] == ["one.jpg"]
    with (tmp_path / "a" / "data_problems.csv").open(encoding="utf-8") as handle:
        assert [(r["file"], r["action"]) for r in csv.DictReader(handle)] == [("class battery",
                                                                               "class kept, never tested")]
    with pytest.raises(DataError, match=r"data.strict=true and 1 problem\(s\) .*class battery: 1 image\(s\)"):
        _datamodule(folder_dataset, tmp_path / "b", strict=True)


def test_a_class_that_misses_only_the_validation_split_says_how_many_images_it_needs(folder_dataset, tmp_path):
    for path in sorted((folder_dataset / "paper").iterdir())[3:]:
        path.unlink()  # 3 paper images: 1 test, 2 left, round(2 x 0.25) = 0 for validation
    with pytest.warns(UserWarning, match=r"\(class kept, never validated\), e.g. class paper: 3 image\(s\): train 2, "
                                         r"val 0, test 1; a class needs 4 images to reach the validation split "
                                         r"\(data.val_ratio=0.25\)"):
        _datamodule(folder_dataset, tmp_path / "a", val_ratio=0.25)


def test_evaluation_set_up_scans_without_the_training_checks_or_a_split_in_its_log(folder_dataset, caplog):
    dm = GarbageDataModule(folder_dataset, batch_size=500, val_ratio=0.9, image_size=32, resize_size=36)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.INFO, logger="garbage_lit.data.index"):
            dm.setup("test")  # what evaluate calls: no batch_size error, no small-training-split warning
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data:")]
    assert line.endswith("(folder layout), 3 classes, 30 images") and "split" not in line
