"""Stratified, seeded train/val/test splits and the manifest file that records them.

The manifest (``split_manifest.csv``: file, label, class_name, split, sha256) is written into every
run folder; pointing ``data.split_manifest`` at one reuses that exact split, so all jobs of a sweep,
or a later evaluation, see the same test images.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from garbage_lit.data.samples import Sample
from garbage_lit.errors import ConfigError, DataError
from garbage_lit.records.tables import write_csv

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ("file", "label", "class_name", "split", "sha256")


def stratified_split(labels: Sequence[int], test_ratio: float, val_ratio: float = 0.0, seed: int = 0) -> list[str]:
    """Assign each sample to train, val or test, per class, reproducibly for a given seed.

    ``test_ratio`` is the share of each class held out for testing; ``val_ratio`` is the share of
    the *remaining* images held out for validation. Each class keeps at least one training image.
    """
    if not 0.0 < test_ratio < 1.0:
        raise DataError(f"data.test_ratio={test_ratio} must lie strictly between 0 and 1 (e.g. 0.2)")
    if not 0.0 <= val_ratio < 1.0:
        raise DataError(f"data.val_ratio={val_ratio} must lie in [0, 1) (0 disables the validation split)")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    assignment = ["train"] * len(labels)
    for label in sorted(by_class):
        members = np.array(by_class[label])[rng.permutation(len(by_class[label]))]
        n_test, n_val = split_counts(len(members), test_ratio, val_ratio)
        for index in members[:n_test]:
            assignment[index] = "test"
        for index in members[n_test:n_test + n_val]:
            assignment[index] = "val"
    return assignment


FOLD_AS = ("test", "val")  # what the chosen fold is: the test split (cross-validation) or the validation split


def stratified_folds(labels: Sequence[int], folds: int, fold: int, test_ratio: float = 0.2, val_ratio: float = 0.0,
                     seed: int = 0, fold_as: str = "test") -> tuple[list[str], list[int | None]]:
    """Each sample's split when the data is cut into ``folds`` stratified folds, and each sample's fold.

    ``fold_as="test"``: k-fold cross-validation. Fold ``fold`` is the test split; ``val_ratio`` of the other folds'
    images (per class) is the validation split. ``fold_as="val"``: the test split is :func:`stratified_split`'s (the
    same images for the same ``test_ratio`` and ``seed``, never in a fold); the rest is cut into folds and fold
    ``fold`` is the validation split, so recipes can be compared on every non-test image without reading the test.
    Within a class the images are dealt to the folds in a seeded order, continuing where the previous class stopped,
    so folds differ in size by at most one image.
    """
    if fold_as not in FOLD_AS:
        raise ConfigError(f"data.fold_as={fold_as!r} must be one of {FOLD_AS}")
    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"data.folds={folds!r} must be a whole number of at least 2 (e.g. 5), or null for one split")
    if not 0 <= fold < folds:
        raise ConfigError(f"data.fold={fold} is out of range for data.folds={folds}: use 0 to {folds - 1}")
    if fold_as == "val":
        assignment = stratified_split(labels, test_ratio, 0.0, seed)
        val_ratio = 0.0
    else:
        if not 0.0 <= val_ratio < 1.0:
            raise DataError(f"data.val_ratio={val_ratio} must lie in [0, 1) (0 disables the validation split)")
        assignment = ["train"] * len(labels)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    of_fold: list[int | None] = [None] * len(labels)
    dealt = 0
    for label in sorted(by_class):
        members = np.array(by_class[label])[rng.permutation(len(by_class[label]))]
        members = [int(i) for i in members if assignment[i] == "train"]  # fold_as=val: the test images stay out
        for position, index in enumerate(members):
            of_fold[index] = (dealt + position) % folds
        dealt += len(members)
        held_out = [i for i in members if of_fold[i] == fold]
        rest = [i for i in members if of_fold[i] != fold]
        for index in held_out:
            assignment[index] = fold_as
        for index in rest[:min(round(len(rest) * val_ratio), len(rest) - 1)]:
            assignment[index] = "val"
    return assignment, of_fold


def split_counts(images: int, test_ratio: float, val_ratio: float) -> tuple[int, int]:
    """How many of a class's ``images`` go to test and to val; at least one always stays for training."""
    n_test = min(round(images * test_ratio), images - 1)
    rest = images - n_test
    return n_test, min(round(rest * val_ratio), rest - 1)


def images_to_reach(split: str, test_ratio: float, val_ratio: float) -> int:
    """The fewest images a class needs for :func:`split_counts` to give it one ``split`` ("test" or "val") image."""
    if split == "val" and val_ratio == 0:
        raise ValueError("data.val_ratio=0: no class reaches the validation split")
    index = 0 if split == "test" else 1
    images = 1
    while split_counts(images, test_ratio, val_ratio)[index] < 1:
        images += 1
    return images


def write_manifest(path: Path, root: Path, samples: Sequence[Sample], splits: Sequence[str],
                   class_names: Sequence[str], folds: Sequence[int | None] | None = None) -> str:
    """Write the split manifest CSV atomically; return its SHA-256 (recorded as provenance). With ``folds`` (each
    image's fold, :func:`stratified_folds`) a ``fold`` column says which fold each image is in (empty: none)."""
    columns = [*MANIFEST_COLUMNS, *(["fold"] if folds is not None else [])]
    write_csv(path, [dict(zip(columns, (sample.path.relative_to(root).as_posix(), sample.label,
                                        class_names[sample.label], split, sample.sha256,
                                        *([folds[i]] if folds is not None else []))))
                     for i, (sample, split) in enumerate(zip(samples, splits))], columns)
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(path: Path, root: Path, samples: Sequence[Sample], class_names: Sequence[str]) -> list[str]:
    """The split of each sample according to the manifest at ``path``.

    Every manifest row must name a usable image with the same class; images found on disk but
    absent from the manifest are an error too, since silently dropping them would change the data.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.split_manifest={path} does not exist; point it at a split_manifest.csv "
                        f"from an earlier run folder, or set it to null to split afresh")
    by_file = {s.path.relative_to(root).as_posix(): s for s in samples}
    splits: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing_columns = set(MANIFEST_COLUMNS[:4]) - set(reader.fieldnames or [])
        if missing_columns:
            raise DataError(f"{path} lacks columns {sorted(missing_columns)}; expected {MANIFEST_COLUMNS}")
        for line, row in enumerate(reader, start=2):
            file, split = row["file"], row["split"]
            if split not in SPLITS:
                raise DataError(f"{path}:{line}: split {split!r} is not one of {SPLITS}")
            if file not in by_file:
                raise DataError(f"{path}:{line}: {file} is not a usable image under {root} "
                                f"(missing, or left out as a bad file); the manifest belongs to other data")
            if class_names[by_file[file].label] != row["class_name"]:
                raise DataError(f"{path}:{line}: {file} is class {row['class_name']!r} in the manifest but "
                                f"{class_names[by_file[file].label]!r} on disk")
            splits[file] = split
    unlisted = sorted(set(by_file) - set(splits))
    if unlisted:
        raise DataError(f"{path} does not list {len(unlisted)} images found under {root}, "
                        f"e.g. {unlisted[:3]}; the manifest belongs to other data")
    return [splits[s.path.relative_to(root).as_posix()] for s in samples]
