"""Both layouts are found correctly, and each kind of bad input gets a clear, file-naming outcome."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest

from garbage_lit.data import GarbageDataModule
from garbage_lit.data.scan import scan_dataset
from garbage_lit.errors import DataError

from helpers.data import CLASS_COLOURS, make_garbage_classify, write_image


def test_folder_layout_classes_sorted_and_labelled(folder_dataset):
    result = scan_dataset(folder_dataset, "folder")
    assert result.class_names == ["glass", "metal", "paper"]
    assert len(result.samples) == 30 and not result.problems
    assert {s.path.parent.name: s.label for s in result.samples} == {"glass": 0, "metal": 1, "paper": 2}
    assert all(len(s.sha256) == 64 for s in result.samples)


def test_garbage_classify_layout_uses_rule_file_for_class_names(garbage_classify_dataset):
    result = scan_dataset(garbage_classify_dataset, "garbage_classify")
    assert result.class_names == ["group/class0", "group/class1", "group/class2", "group/class3"]
    assert sorted({s.label for s in result.samples}) == [0, 1, 3]
    assert len(result.samples) == 24


def test_garbage_classify_without_rule_file_names_classes_by_label(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 0, 2, 2])
    (root / "garbage_classify_rule.json").unlink()
    result = scan_dataset(root, "garbage_classify")
    assert result.class_names == ["0", "2"]
    assert sorted(s.label for s in result.samples) == [0, 0, 1, 1]


@pytest.mark.parametrize("make_root, message", [
    (lambda tmp: tmp / "does-not-exist", "does not exist"),
    (lambda tmp: tmp, "no class sub-folders"),
])
def test_missing_or_empty_root_is_a_clear_error(tmp_path, make_root, message):
    with pytest.raises(DataError, match=message) as error:
        scan_dataset(make_root(tmp_path), "folder")
    assert "data.root" in str(error.value) or "data.layout" in str(error.value)


def test_unknown_layout_lists_the_choices(folder_dataset):
    with pytest.raises(DataError, match="folder, garbage_classify"):
        scan_dataset(folder_dataset, "imagenet")


@pytest.fixture
def broken_garbage_classify(tmp_path) -> Path:
    """Eight good images (two classes) plus one file of each kind of problem."""
    root = make_garbage_classify(tmp_path / "gc", [0, 0, 0, 0, 1, 1, 1, 1])
    write_image(root / "img_20.jpg", CLASS_COLOURS[0], seed=20)          # no label file
    (root / "img_21.txt").write_text("img_21.jpg, 0")                     # no image
    write_image(root / "img_22.jpg", CLASS_COLOURS[0], seed=22)
    (root / "img_22.txt").write_text("img_22.jpg 0")                      # malformed line
    write_image(root / "img_23.jpg", CLASS_COLOURS[0], seed=23)
    (root / "img_23.txt").write_text("img_23.jpg, 77")                    # outside the rule file
    (root / "img_24.jpg").write_bytes(b"this is not a jpeg")              # unreadable image
    (root / "img_24.txt").write_text("img_24.jpg, 1")
    good = (root / "img_1.jpg").read_bytes()
    (root / "img_25.jpg").write_bytes(good[: len(good) // 2])             # truncated image
    (root / "img_25.txt").write_text("img_25.jpg, 1")
    return root


EXPECTED_PROBLEMS = {
    "img_20.jpg": "image without a label file",
    "img_21.txt": "label file without an image",
    "img_22.txt": "malformed label file",
    "img_23.txt": "outside garbage_classify_rule.json",
    "img_24.jpg": "not an image",
    "img_25.jpg": "truncated or corrupt",
}


def test_each_bad_file_is_named_with_its_problem(broken_garbage_classify):
    result = scan_dataset(broken_garbage_classify, "garbage_classify")
    found = {p.file: p.problem for p in result.problems}
    assert set(found) == set(EXPECTED_PROBLEMS)
    for file, text in EXPECTED_PROBLEMS.items():
        assert text in found[file], (file, found[file])
    assert len(result.samples) == 8


def test_default_policy_lists_problems_warns_once_and_leaves_bad_files_out(broken_garbage_classify, tmp_path):
    out = tmp_path / "run"
    dm = GarbageDataModule(broken_garbage_classify, layout="garbage_classify", batch_size=2, image_size=32,
                           resize_size=36, output_dir=out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup()
    data_warnings = [w for w in caught if "data problem" in str(w.message)]
    assert len(data_warnings) == 1 and "6 data problem(s)" in str(data_warnings[0].message)
    with (out / "data_problems.csv").open() as handle:
        listed = {row["file"]: row for row in csv.DictReader(handle)}
    assert set(listed) == set(EXPECTED_PROBLEMS)
    assert sum(len(v) for v in dm.splits.values()) == 8
    # Every remaining image decodes: a full pass over the loaders never meets a bad file.
    assert sum(len(y) for _, y in dm.train_dataloader()) + sum(len(y) for _, y in dm.test_dataloader()) == 8


def test_strict_mode_turns_problems_into_an_error_before_training(broken_garbage_classify, tmp_path):
    dm = GarbageDataModule(broken_garbage_classify, layout="garbage_classify", batch_size=2, strict=True,
                           output_dir=tmp_path / "run")
    with pytest.raises(DataError, match="data.strict=true") as error:
        dm.setup()
    assert "img_2" in str(error.value) and "data_problems.csv" in str(error.value)
    assert (tmp_path / "run" / "data_problems.csv").is_file()


def test_malformed_rule_file_is_an_error_naming_it(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 1])
    (root / "garbage_classify_rule.json").write_text("{not json")
    with pytest.raises(DataError, match="garbage_classify_rule.json is not valid JSON"):
        scan_dataset(root, "garbage_classify")


def test_label_file_variants_parse(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 0, 1, 1])
    (root / "img_1.txt").write_bytes("\ufeffimg_1.jpg, 0\r\n\r\n".encode("utf-8"))
    (root / "img_2.txt").write_text("  img_2.jpg ,  0  \n\n\n")
    (root / "img_3.txt").write_bytes("img_3.jpg, 1".encode("gbk"))
    result = scan_dataset(root, "garbage_classify")
    assert not result.problems
    assert sorted(s.label for s in result.samples) == [0, 0, 1, 1]


def test_rule_file_with_unicode_names_roundtrips(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 1])
    (root / "garbage_classify_rule.json").write_text(json.dumps({"0": "其他垃圾/烟蒂", "1": "可回收物/易拉罐"}))
    assert scan_dataset(root, "garbage_classify").class_names == ["其他垃圾/烟蒂", "可回收物/易拉罐"]
