"""The label audit finds photos filed under the wrong class, and data.exclude reads its list back."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from garbage_lit.audit import audit
from garbage_lit.data.datamodule import GarbageDataModule
from garbage_lit.errors import ConfigError, DataError

from helpers.config import compose_app
from helpers.data import CLASS_COLOURS, REPO, make_folder_dataset, write_image

pytest.importorskip("cleanlab", reason="the audit needs the insight extra: pip install 'garbage-lit[insight]'")

CLASSES = ("glass", "metal", "paper")


def _audit(data: Path, out: Path, cache: Path, *overrides: str) -> list[dict[str, str]]:
    """Run the audit (random-init ResNet18 features of 32 px photos unless overridden); its label_issues.csv rows."""
    audit(compose_app("audit", out, "data=folder", f"data.root={data}", f"cache.dir={cache}", "threads=1",
                      "model=resnet18", "model.weights=none", "data.image_size=32", "data.resize_size=36",
                      *overrides))
    with (out / "label_issues.csv").open() as handle:
        return list(csv.DictReader(handle))


def _plant_flips(root: Path, flips: dict[str, str]) -> None:
    """Move each photo (relative path) into another class folder: its label is now wrong."""
    for file, wrong_class in flips.items():
        shutil.move(root / file, root / wrong_class / Path(file).name)


def test_planted_label_flips_rank_at_the_top_with_their_true_class_suggested(tmp_path):
    data = tmp_path / "data"
    for label, name in enumerate(CLASSES):
        for i in range(20):
            write_image(data / name / f"{name}{i}.jpg", CLASS_COLOURS[label], seed=100 * label + i)
    flips = {"glass/glass3.jpg": "metal", "metal/metal7.jpg": "paper", "paper/paper11.jpg": "glass"}
    _plant_flips(data, flips)

    rows = _audit(data, tmp_path / "audit", tmp_path / "cache")
    planted = {f"{wrong}/{Path(file).name}": file.split("/")[0] for file, wrong in flips.items()}
    top = {row["file"]: row for row in rows[:len(planted)]}
    assert set(top) == set(planted)  # the three flips are the three most doubtful photos
    for file, true_class in planted.items():
        assert top[file]["suggested"] == true_class and top[file]["given"] != true_class
        assert float(top[file]["given_probability"]) < 0.2 and "confident learning" in top[file]["reasons"]
    assert len(rows) < 10  # and the clean photos are not swept up with them

    excluded = [line for line in (tmp_path / "audit" / "exclude.txt").read_text().splitlines()
                if not line.startswith("#")]
    assert excluded == [row["file"] for row in rows]
    assert (tmp_path / "audit" / "label_issues.png").stat().st_size > 1000

    # data.exclude reads the list back: the suspects leave every split and are listed as excluded
    images = GarbageDataModule(data, test_ratio=0.2, output_dir=tmp_path / "run",
                               exclude=tmp_path / "audit" / "exclude.txt", image_size=32, resize_size=36)
    images.setup("fit")
    kept = {s.path.relative_to(images.root).as_posix() for split in images.splits.values() for s in split}
    assert len(kept) == 60 - len(excluded) and not kept & set(excluded)
    with (tmp_path / "run" / "data_problems.csv").open() as handle:
        problems = {row["file"]: row["action"] for row in csv.DictReader(handle)}
    assert problems == {file: "excluded" for file in excluded}


def test_a_photo_stored_in_two_classes_is_always_a_suspect(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    shutil.copy(data / "glass" / "glass0.jpg", data / "paper" / "copy_of_glass0.jpg")
    rows = {row["file"]: row for row in _audit(data, tmp_path / "audit", tmp_path / "cache", "folds=3")}
    for file, other in (("glass/glass0.jpg", "paper"), ("paper/copy_of_glass0.jpg", "glass")):
        assert f"identical photo also labelled {other}" in rows[file]["reasons"]


def test_the_audit_refuses_augmented_features_and_too_many_folds(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    with pytest.raises(ValueError, match="data.rotation_degrees=15"):
        _audit(data, tmp_path / "a", tmp_path / "cache", "data.rotation_degrees=15")
    with pytest.raises(ValueError, match="folds=12.*smallest class has 10"):
        _audit(data, tmp_path / "b", tmp_path / "cache", "folds=12")


def test_an_exclude_list_that_is_missing_or_of_other_data_is_refused(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    with pytest.raises(DataError, match="data.exclude=.*does not exist"):
        GarbageDataModule(data, exclude=tmp_path / "nope.txt").setup("test")
    other = tmp_path / "other.txt"
    other.write_text("# from another data set\ncans/can1.jpg\n")
    with pytest.raises(DataError, match="none of them is under"):
        GarbageDataModule(data, exclude=other).setup("test")


@pytest.mark.slow
def test_planted_flips_in_a_copy_of_the_real_sample_rank_near_the_top(tmp_path):
    """The bundled 180 TrashNet photos with ImageNet efficientnet_lite0 features: 6 labels flipped on purpose."""
    data = tmp_path / "trashnet_mini"
    shutil.copytree(REPO / "garbage_lit" / "sample_data" / "trashnet_mini", data)
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    flips = {}
    for i, name in enumerate(classes):  # the first photo of each class goes to the next class
        photo = sorted((data / name).glob("*.jpg"))[0]
        flips[photo.relative_to(data).as_posix()] = classes[(i + 1) % len(classes)]
    _plant_flips(data, flips)
    rows = _audit(data, tmp_path / "audit", tmp_path / "cache", "model=efficientnet_lite0", "model.weights=imagenet",
                  "data.image_size=224", "data.resize_size=256")
    ranks = {row["file"]: int(row["rank"]) for row in rows}
    planted = [f"{wrong}/{Path(file).name}" for file, wrong in flips.items()]
    assert all(file in ranks for file in planted), (planted, list(ranks)[:20])
    assert max(ranks[file] for file in planted) <= 15


def test_a_missing_package_is_named_with_the_extra_that_brings_it(monkeypatch):
    import importlib.util

    from garbage_lit.insight.label_issues import require_insight_packages

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cleanlab" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"needs cleanlab: pip install 'garbage-lit\[insight\]'"):
        require_insight_packages()
