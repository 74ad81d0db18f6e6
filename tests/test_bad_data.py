"""The bad-data catalogue: each kind of bad input has one documented outcome, and no good file is lost.

Outcomes (docs/trustworthy_runs.md "Bad data: what happens"): converted to RGB, skipped with a reason listed in
data_problems.csv, or a clear DataError before training.
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from garbage_lit.data import GarbageDataModule
from garbage_lit.data.images import load_rgb
from garbage_lit.data.layouts import RULE_FILE
from garbage_lit.data.scan import MIN_IMAGE_SIDE, scan_dataset
from garbage_lit.errors import DataError

from helpers.data import REPO, make_garbage_classify

GOOD_FOLDER_IMAGES = 30  # the folder_dataset fixture: 3 classes x 10


def _files(result) -> set[str]:
    return {s.path.relative_to(result.root).as_posix() for s in result.samples}


def _problems(result) -> dict[str, str]:
    return {p.file: p.problem for p in result.problems}


def assert_one_skipped(root: Path, name: str, reason: str) -> None:
    result = scan_dataset(root, "folder")
    assert len(result.samples) == GOOD_FOLDER_IMAGES  # nothing else lost
    assert list(_problems(result)) == [f"glass/{name}"]
    assert reason in _problems(result)[f"glass/{name}"]
    assert result.problems[0].action == "skipped"


def _photo(seed: int = 0, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# -- files that cannot be used: skipped with a listed reason ------------------------------------
def test_zero_byte_file_is_skipped(folder_dataset):
    (folder_dataset / "glass" / "empty.jpg").write_bytes(b"")
    assert_one_skipped(folder_dataset, "empty.jpg", "empty file (0 bytes)")


def test_text_file_named_jpg_is_skipped(folder_dataset):
    (folder_dataset / "glass" / "notes.jpg").write_text("not a photo\n")
    assert_one_skipped(folder_dataset, "notes.jpg", "not an image Pillow can read")


def test_truncated_jpeg_is_skipped(folder_dataset):
    whole = (folder_dataset / "glass" / "glass0.jpg").read_bytes()
    (folder_dataset / "glass" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert_one_skipped(folder_dataset, "cut.jpg", "truncated")


def test_image_over_the_decompression_bomb_limit_is_skipped(folder_dataset, monkeypatch):
    _photo(size=(100, 100)).save(folder_dataset / "glass" / "huge.png")  # 10,000 px; the others 1,920
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # Pillow alone would only warn below 10,000
    with pytest.warns(Image.DecompressionBombWarning):
        assert_one_skipped(folder_dataset, "huge.png", "decompression-bomb limit")


# -- files that are not images: listed as ignored, counted, never a warning -----------------------
def test_files_that_are_not_images_are_listed_with_the_reason(folder_dataset):
    (folder_dataset / "glass" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder_dataset / "glass" / "notes.txt").write_text("taken on a Tuesday\n")
    (folder_dataset / "metal" / "raw").mkdir()
    (folder_dataset / "metal" / "raw" / "IMG_0001.HEIC").write_bytes(b"ftypheic")
    (folder_dataset / "README.md").write_text("my photos\n")           # beside the class folders: not data
    _photo().save(folder_dataset / "stray.jpg")                         # a photo there is, and is not used
    result = scan_dataset(folder_dataset, "folder")
    assert len(result.samples) == GOOD_FOLDER_IMAGES and not result.problems
    assert {p.file: (p.problem, p.action) for p in result.ignored} == {
        "stray.jpg": ("image outside any class folder", "ignored"),
        "glass/.DS_Store": ("hidden file", "ignored"),
        "glass/notes.txt": ("not an image file (extension .txt; images are .jpg .jpeg .png .bmp .gif .webp .tif "
                            ".tiff)", "ignored"),
        "metal/raw/IMG_0001.HEIC": ("not an image file (extension .heic; images are .jpg .jpeg .png .bmp .gif "
                                    ".webp .tif .tiff)", "ignored"),
    }


def test_ignored_files_are_listed_in_the_run_folder_and_counted_in_the_log_line(folder_dataset, tmp_path, caplog):
    (folder_dataset / "glass" / ".DS_Store").write_bytes(b"\0")
    (folder_dataset / "paper" / "notes.txt").write_text("x")
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ignored files warn about nothing
        with caplog.at_level(logging.INFO, logger="garbage_lit.data.index"):
            GarbageDataModule(folder_dataset, output_dir=out, batch_size=4, strict=True).setup()  # nor refuse
    with (out / "data_problems.csv").open(encoding="utf-8") as handle:
        rows = [(r["file"], r["action"]) for r in csv.DictReader(handle)]
    assert rows == [("glass/.DS_Store", "ignored"), ("paper/notes.txt", "ignored")]
    assert ("30 images; split train 24, val 0, test 6; 2 other file(s) ignored, not images (listed in "
            "data_problems.csv)") in caplog.text


def test_garbage_classify_lists_stray_files_but_not_its_label_and_rule_files(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 1, 3, 0, 1, 3])
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "PROVENANCE.tsv").write_text("file\tsource\n")
    result = scan_dataset(root, "garbage_classify")
    assert not result.problems and len(result.samples) == 6
    assert [(p.file, p.problem) for p in result.ignored] == [
        (".DS_Store", "hidden file"),
        ("PROVENANCE.tsv", "not an image file (extension .tsv; images are .jpg .jpeg .png .bmp .gif .webp .tif .tiff)")]


def test_a_folder_of_other_files_says_what_it_found(tmp_path):
    (tmp_path / "glass").mkdir()
    (tmp_path / "glass" / "IMG_1.heic").write_bytes(b"ftypheic")
    with pytest.raises(DataError, match=r"no usable images under .*: 1 problem\(s\), e.g. glass/: class folder holds "
                                        r"no images \(1 other files were not read as images, e.g. glass/IMG_1.heic: "
                                        r"not an image file \(extension .heic"):
        scan_dataset(tmp_path, "folder")


# -- tiny images: kept, listed and warned below MIN_IMAGE_SIDE -------------------------------------
def test_tiny_images_are_kept_and_listed_below_the_documented_size(folder_dataset, tmp_path):
    Image.new("RGB", (8, 8), (200, 40, 40)).save(folder_dataset / "glass" / "thumb.png")
    _photo(size=(48, MIN_IMAGE_SIDE - 1)).save(folder_dataset / "metal" / "strip.png")
    _photo(size=(MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)).save(folder_dataset / "paper" / "small_enough.png")
    result = scan_dataset(folder_dataset, "folder")
    assert len(result.samples) == GOOD_FOLDER_IMAGES + 3  # all kept
    assert {p.file: (p.problem, p.action) for p in result.problems} == {
        "glass/thumb.png": ("tiny image (8x8 px, shorter side under 32 px): upscaled to the input size it shows "
                            "little", "kept"),
        "metal/strip.png": ("tiny image (48x31 px, shorter side under 32 px): upscaled to the input size it shows "
                            "little", "kept")}
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"2 data problem\(s\) under .* \(kept\), e.g. glass/thumb.png: tiny image"):
        module = GarbageDataModule(folder_dataset, output_dir=out, batch_size=4)
        module.setup()
    assert sum(len(v) for v in module.splits.values()) == GOOD_FOLDER_IMAGES + 3
    assert f"{MIN_IMAGE_SIDE} px" in (REPO / "docs" / "data.md").read_text()  # the size used is the one documented
    with pytest.raises(DataError, match="data.strict=true and 2 problem"):
        GarbageDataModule(folder_dataset, output_dir=tmp_path / "strict", batch_size=4, strict=True).setup()


# -- unusual but valid images: converted to 8-bit RGB, not rejected -----------------------------
@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_unusual_modes_are_converted_to_rgb(folder_dataset, mode):
    name = f"odd_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    if mode == "I;16":
        image = Image.fromarray(np.full((40, 48), 65535, dtype=np.uint16))
        assert image.mode == "I;16"
    else:
        image = _photo().convert(mode)
    image.save(folder_dataset / "glass" / name)
    result = scan_dataset(folder_dataset, "folder")
    assert not result.problems
    assert len(result.samples) == GOOD_FOLDER_IMAGES + 1
    loaded = load_rgb(folder_dataset / "glass" / name)
    assert (loaded.mode, loaded.size) == ("RGB", (48, 40))
    if mode == "I;16":
        assert loaded.getpixel((0, 0)) == (255, 255, 255)  # full 16-bit scale maps to 255, not clipped noise


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "rgba.png")
    palette = Image.new("P", (4, 4), 1)  # colour 1 (blue) is the transparent one
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "palette.png", transparency=1)
    for name in ("rgba.png", "palette.png"):
        loaded = load_rgb(tmp_path / name)
        assert (loaded.getpixel((0, 0)), loaded.getpixel((1, 1))) == ((255, 0, 0), (255, 255, 255)), name


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16)).save(path)
    assert [load_rgb(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_exif_rotation_is_applied(tmp_path):
    photo = _photo(size=(48, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    photo.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").size == (40, 48)


# -- folder layout: an empty class folder is listed and the class kept ---------------------------
def test_empty_class_folder_is_listed_and_the_class_kept(folder_dataset):
    (folder_dataset / "battery").mkdir()
    result = scan_dataset(folder_dataset, "folder")
    assert result.class_names == ["battery", "glass", "metal", "paper"]  # indices stay stable across runs
    assert _problems(result) == {"battery/": "class folder holds no images"}
    assert result.problems[0].action == "class kept with no samples"
    assert len(result.samples) == GOOD_FOLDER_IMAGES


# -- garbage_classify label files ----------------------------------------------------------------
@pytest.mark.parametrize("content", [
    "\ufeffimg_1.jpg, 2".encode(),                      # UTF-8 byte-order mark
    b"img_1.jpg, 2\r\n",                                 # CRLF
    b"  img_1.jpg ,   2  ",                              # extra spaces
    b"img_1.jpg, 2\n\n\n",                               # trailing blank lines
    "img_1.jpg，2".encode("gbk"),                        # GBK, full-width comma
], ids=["bom", "crlf", "spaces", "blank-lines", "gbk"])
def test_label_file_variants_are_read(tmp_path, content):
    root = make_garbage_classify(tmp_path / "gc", [0, 1, 3, 0, 1, 3])
    (root / "img_1.txt").write_bytes(content)
    result = scan_dataset(root, "garbage_classify")
    assert not result.problems
    labels = {s.path.name: s.label for s in result.samples}
    assert len(labels) == 6 and labels["img_1.jpg"] == 2


@pytest.mark.parametrize("label, reason", [
    ("two", "label 'two' is not an integer"),
    ("1.5", "label '1.5' is not an integer"),
    ("4", "label 4 is outside garbage_classify_rule.json (0..3)"),
    ("-1", "label -1 is outside"),
])
def test_bad_labels_are_skipped_with_the_reason(tmp_path, label, reason):
    root = make_garbage_classify(tmp_path / "gc", [0, 1, 3, 0, 1, 3])
    (root / "img_4.txt").write_text(f"img_4.jpg, {label}")
    result = scan_dataset(root, "garbage_classify")
    assert reason in _problems(result)["img_4.txt"]
    assert _files(result) == {f"img_{n}.jpg" for n in (1, 2, 3, 5, 6)}


def test_missing_rule_file_names_classes_by_label_and_is_listed(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 1, 3, 0, 1, 3])
    (root / RULE_FILE).unlink()
    result = scan_dataset(root, "garbage_classify")
    assert result.class_names == ["0", "1", "3"]
    assert [s.label for s in result.samples] == [0, 1, 2, 0, 1, 2]
    assert _problems(result) == {RULE_FILE: "missing: class names unknown"}


@pytest.mark.parametrize("text, message", [
    ('{"0": "a/b", "1": ', "is not valid JSON"),
    ('["a/b", "c/d"]', "must be a JSON object"),
    ('{"0": "a/b", "2": "c/d"}', "without gaps"),
])
def test_malformed_rule_file_is_an_error_before_training(tmp_path, text, message):
    root = make_garbage_classify(tmp_path / "gc", [0, 1, 0, 1])
    (root / RULE_FILE).write_text(text)
    with pytest.raises(DataError, match=message) as error:
        scan_dataset(root, "garbage_classify")
    assert RULE_FILE in str(error.value)


def test_rule_file_with_fewer_classes_than_the_labels_skips_those_images(tmp_path):
    root = make_garbage_classify(tmp_path / "gc", [0, 1, 3, 0, 1, 3], num_rule_classes=2)
    result = scan_dataset(root, "garbage_classify")
    assert result.class_names == ["group/class0", "group/class1"]
    assert set(_problems(result)) == {"img_3.txt", "img_6.txt"}
    assert _files(result) == {"img_1.jpg", "img_2.jpg", "img_4.jpg", "img_5.jpg"}


# -- in a run: the listing, and strict mode ------------------------------------------------------
def test_problems_are_listed_in_the_run_folder_and_strict_stops_before_training(folder_dataset, tmp_path):
    (folder_dataset / "glass" / "empty.jpg").write_bytes(b"")
    (folder_dataset / "metal" / "notes.jpg").write_text("x")
    out = tmp_path / "run"
    module = GarbageDataModule(folder_dataset, output_dir=out, batch_size=4)
    with pytest.warns(UserWarning, match="2 data problem"):
        module.setup()
    with (out / "data_problems.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["file"], r["action"]) for r in rows] == [("glass/empty.jpg", "skipped"), ("metal/notes.jpg", "skipped")]
    assert sum(len(v) for v in module.splits.values()) == GOOD_FOLDER_IMAGES

    with pytest.raises(DataError, match="data.strict=true and 2 problem"):
        GarbageDataModule(folder_dataset, output_dir=tmp_path / "strict", batch_size=4, strict=True).setup()
