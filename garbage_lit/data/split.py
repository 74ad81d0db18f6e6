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
from garbage_lit.errors import DataError
from garbage_lit.records.atomic import atomic_write

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
                   class_names: Sequence[str]) -> str:
    """Write the split manifest CSV atomically; return its SHA-256 (recorded as provenance)."""
    with atomic_write(path, newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for sample, split in zip(samples, splits):
            writer.writerow([sample.path.relative_to(root).as_posix(), sample.label,
                             class_names[sample.label], split, sample.sha256])
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
