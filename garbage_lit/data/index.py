"""The data set as a run sees it, before any loader: its images found and checked, split, and its problems told.

:class:`DataIndex` scans ``root`` in its layout (every image decoded and hashed once, see :mod:`garbage_lit.data.scan`),
leaves out the photos ``exclude`` lists, splits the rest (stratified and seeded, or as ``split_manifest`` says) and
writes what it found into the run folder: ``split_manifest.csv``, ``data_problems.csv`` (bad files, left out; tiny
images, kept; classes too small to reach the test or validation split), ``duplicates.csv`` (byte-identical images;
``dedupe=True`` leaves out the training-side copies, the manifest still records the split before that). With
``strict=True`` any problem is an error before training starts. Training (``GarbageDataModule``), ``evaluate`` and
``garbage_lit.audit`` all read their data through it.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from inspect import signature
from pathlib import Path
from typing import Any

from lightning_utilities.core.rank_zero import rank_zero_only

from garbage_lit.data.duplicates import DuplicateGroup, dropped_by_dedupe, find_duplicates, summary, write_duplicates
from garbage_lit.data.exclude import drop_excluded
from garbage_lit.data.groups import class_bins
from garbage_lit.data.samples import DataProblem, Sample, ScanResult
from garbage_lit.data.scan import scan_dataset
from garbage_lit.data.split import (
    SPLITS,
    images_to_reach,
    read_manifest,
    stratified_folds,
    stratified_split,
    write_manifest,
)
from garbage_lit.errors import ConfigError, DataError
from garbage_lit.records.folder import DUPLICATES_FILE, MANIFEST_FILE, PROBLEMS_FILE
from garbage_lit.records.tables import write_csv

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
TYPICAL_RATIO = {"test": 0.2, "val": 0.1}  # suggested when a ratio leaves too few training images


class DataIndex:
    """The labelled images under ``root``, checked and split (see the module docstring); built by :meth:`build`.

    ``groups`` maps classes to waste bins (a dict, or a YAML / CSV file; see :mod:`garbage_lit.data.groups`);
    garbage_classify's ``group/item`` classes have bins without it. ``exclude`` names a list of photos to leave out
    (one path per line, relative to ``root``; see :mod:`garbage_lit.data.exclude`). ``scan_cache`` keeps each file's
    check result in ``cache_dir``, so later jobs skip re-reading unchanged files. ``output_dir`` (None: nowhere)
    receives the listings.
    """

    def __init__(self, root: str | Path, layout: str = "folder", test_ratio: float = 0.2, val_ratio: float = 0.0,
                 split_seed: int = 0, split_manifest: str | Path | None = None, strict: bool = False,
                 dedupe: bool = False, groups: str | Path | Mapping[str, str] | None = None,
                 exclude: str | Path | None = None, scan_cache: bool = True, cache_dir: str | Path | None = None,
                 output_dir: str | Path | None = None, folds: int | None = None, fold: int = 0,
                 fold_as: str = "test") -> None:
        self.root = Path(root).expanduser().resolve()
        self.layout, self.test_ratio, self.val_ratio, self.split_seed = layout, test_ratio, val_ratio, split_seed
        self.split_manifest, self.strict, self.dedupe = split_manifest, strict, dedupe
        self.groups, self.exclude = groups, exclude
        self.cache_dir = cache_dir if scan_cache else None
        self.output_dir = Path(output_dir) if output_dir else None
        self.folds, self.fold, self.fold_as = folds, fold, fold_as
        if folds is not None and split_manifest:
            raise ConfigError(f"data.split_manifest={split_manifest} fixes the split and data.folds={folds} cuts it "
                              f"afresh: set one of them (data.folds=null or data.split_manifest=null)")
        self.of_fold: list[int | None] | None = None  # each image's fold, with data.folds
        self.scan: ScanResult | None = None
        self.splits: dict[str, list[Sample]] = {}
        self.class_bins: list[str] | None = None
        self.duplicates: list[DuplicateGroup] = []
        self.manifest_sha256: str | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **overrides: Any) -> DataIndex:
        """An index from a ``data`` config (its loader keys, if any, are not an index's business)."""
        return cls(**{**index_settings(settings), **overrides})

    # -- building -------------------------------------------------------------------------------
    def build(self, training: bool) -> DataIndex:
        """Scan, split and report the data once. For training, also check the split serves it: every class in the
        test split (and in the validation split when there is one), and a training split that is not empty."""
        if self.scan is not None:
            return self
        scan = scan_dataset(self.root, self.layout, cache_dir=self.cache_dir)
        scan, excluded = drop_excluded(scan, self.exclude) if self.exclude else (scan, [])
        self.class_bins = class_bins(scan.class_names, self.groups)
        if self.split_manifest:
            assignment = read_manifest(Path(self.split_manifest), self.root, scan.samples, scan.class_names)
        elif self.folds is not None:
            assignment, self.of_fold = stratified_folds([s.label for s in scan.samples], self.folds, self.fold,
                                                        self.test_ratio, self.val_ratio, self.split_seed, self.fold_as)
            self._check_folds(scan)
        else:
            assignment = stratified_split([s.label for s in scan.samples], self.test_ratio, self.val_ratio,
                                          self.split_seed)
        self.duplicates = find_duplicates(scan.samples, assignment)
        dropped = dropped_by_dedupe(self.duplicates, assignment) if self.dedupe else set()
        self.splits = {name: [s for i, (s, a) in enumerate(zip(scan.samples, assignment))
                              if a == name and i not in dropped]
                       for name in SPLITS}
        self._report_problems(scan.problems + (self._unmeasured_classes(scan.class_names) if training else []),
                              scan.ignored + excluded)
        self._report_duplicates(scan, assignment, dropped)
        if training:
            self._check_training_split()
        if self.output_dir is not None:
            self.manifest_sha256 = self._write_manifest(scan, assignment)
        self.scan = scan
        split = ", ".join(f"{name} {len(samples)}" for name, samples in self.splits.items())
        log.info("data: %s (%s layout), %d classes, %d images%s%s%s", self.root, scan.layout, scan.num_classes,
                 len(scan.samples), f"; split {split}" if training else "",
                 f"; {len(excluded)} left out as data.exclude lists (in {PROBLEMS_FILE})" if excluded else "",
                 f"; {len(scan.ignored)} other file(s) ignored, not images (listed in {PROBLEMS_FILE})"
                 if scan.ignored else "")
        return self

    # -- what the rest of the run needs to know -------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return self._require_scan().class_names

    @property
    def num_classes(self) -> int:
        return self._require_scan().num_classes

    @property
    def fold_record(self) -> dict[str, Any] | None:
        """Which fold this split holds out, as metrics.json records it (None without ``folds``)."""
        return {"folds": self.folds, "fold": self.fold, "as": self.fold_as} if self.folds is not None else None

    @property
    def train_class_counts(self) -> list[int]:
        """Training images of each class (e.g. for a class-weighted loss)."""
        counts = Counter(s.label for s in self.splits["train"])
        return [counts[label] for label in range(self.num_classes)]

    def _require_scan(self) -> ScanResult:
        if self.scan is None:
            raise RuntimeError("build() the data index before asking it about its classes")
        return self.scan

    # -- checks and listings --------------------------------------------------------------------
    def _check_folds(self, scan: ScanResult) -> None:
        """Refuse folds that leave a class out of some fold's held-out split (it has fewer images than folds)."""
        for label, class_name in enumerate(scan.class_names):
            dealt = sum(1 for s, f in zip(scan.samples, self.of_fold) if s.label == label and f is not None)
            if 0 < dealt < self.folds:
                raise DataError(f"data.folds={self.folds}: class {class_name!r} has {dealt} image(s) to deal, so "
                                f"{self.folds - dealt} of the {self.folds} folds would hold none of it as "
                                f"{SPLIT_NAMES[self.fold_as]} images; use data.folds={max(dealt, 2)} or fewer, or "
                                f"leave the class out")


    def _unmeasured_classes(self, class_names: Sequence[str]) -> list[DataProblem]:
        """Classes with images but none in the test split (or the val split, when there is one), and why."""
        counts = {name: Counter(s.label for s in samples) for name, samples in self.splits.items()}
        measured = [name for name in ("test", "val") if self.splits[name]]
        rows = []
        for label, class_name in enumerate(class_names):
            per_split = {name: counts[name][label] for name in SPLITS}
            missing = [name for name in measured if not per_split[name]]
            if not missing or not sum(per_split.values()):
                continue
            spread = ", ".join(f"{name} {n}" for name, n in per_split.items())
            rows.append(DataProblem(f"class {class_name}",
                                    f"{sum(per_split.values())} image(s): {spread}; {self._images_needed(missing)}",
                                    f"class kept, never {'tested' if 'test' in missing else 'validated'}"))
        return rows

    def _images_needed(self, splits: Sequence[str]) -> str:
        """What would put a class into ``splits``: so many images with these ratios, or another manifest."""
        if self.split_manifest:
            return f"the split manifest {self.split_manifest} gives it no {' or '.join(splits)} image"
        needs = [f"{images_to_reach(name, self.test_ratio, self.val_ratio)} images to reach the {SPLIT_NAMES[name]} "
                 f"split (data.{name}_ratio={self.test_ratio if name == 'test' else self.val_ratio})"
                 for name in splits]
        return "a class needs " + " and ".join(needs)

    def _check_training_split(self) -> None:
        """Refuse a split without training or test images; warn when val or test outnumber train."""
        sizes = {name: len(samples) for name, samples in self.splits.items()}
        train = sizes["train"]
        if not train or not sizes["test"]:
            raise DataError(f"{self.root}: the split left {train} training and {sizes['test']} test images; every "
                            f"class needs at least {images_to_reach('test', self.test_ratio, self.val_ratio)} images "
                            f"with data.test_ratio={self.test_ratio} (or raise data.test_ratio)")
        larger = [name for name in ("val", "test") if sizes[name] > train]
        if larger:
            cause = self.held_out(max(larger, key=sizes.get))
            warnings.warn(f"the training split ({train} images) is smaller than the "
                          + " and the ".join(f"{SPLIT_NAMES[name]} split ({sizes[name]})" for name in larger)
                          + f": {cause[0]}; {cause[1]}", stacklevel=2)

    def held_out(self, split: str) -> tuple[str, str]:
        """Which ratio (or manifest) held out the images of ``split``, in numbers, and the fix."""
        sizes = {name: len(samples) for name, samples in self.splits.items()}
        if self.split_manifest:
            return (f"the split manifest {self.split_manifest} puts {sizes[split]} images in {split}",
                    "use a split manifest that keeps more images for training")
        if split == "test":
            return (f"data.test_ratio={self.test_ratio} holds out {sizes['test']} of the {sum(sizes.values())} "
                    f"images for testing", f"lower data.test_ratio (e.g. {TYPICAL_RATIO['test']})")
        return (f"data.val_ratio={self.val_ratio} holds out {sizes['val']} of the {sizes['train'] + sizes['val']} "
                f"images left after the test split for validation",
                f"lower data.val_ratio (e.g. {TYPICAL_RATIO['val']})")

    def _report_problems(self, problems: list[DataProblem], ignored: list[DataProblem]) -> None:
        """List every problem and ignored (or excluded) file; refuse problems under ``strict``, else warn once per
        kind (action)."""
        listing = self.output_dir / PROBLEMS_FILE if self.output_dir else None
        if listing is not None and (problems or ignored):
            _write_problems(listing, problems + ignored)
        if not problems:
            return
        full_list = f"full list in {listing}" if listing else ""
        if self.strict:
            examples = "; ".join(f"{p.file}: {p.problem}" for p in problems[:3])
            raise DataError(f"data.strict=true and {len(problems)} problem(s) were found under {self.root}: "
                            f"{examples}" + (f" ({full_list})" if full_list else "")
                            + "; fix the files or set data.strict=false to leave them out")
        by_action: dict[str, list[DataProblem]] = {}
        for problem in problems:
            by_action.setdefault(problem.action, []).append(problem)
        for action, group in by_action.items():
            examples = "; ".join(f"{p.file}: {p.problem}" for p in group[:3])
            warnings.warn(f"{len(group)} data problem(s) under {self.root} ({action}), e.g. {examples}"
                          + (f"; {full_list}" if full_list else ""), stacklevel=2)

    def _report_duplicates(self, scan: ScanResult, assignment: list[str], dropped: set[int]) -> None:
        if not self.duplicates:
            return
        listing = self.output_dir / DUPLICATES_FILE if self.output_dir else None
        if listing is not None:
            rank_zero_only(write_duplicates)(listing, self.root, scan.samples, assignment, scan.class_names,
                                             self.duplicates, dropped, self.dedupe)
        action = (f"data.dedupe=true left out {len(dropped)} training-side copies" if self.dedupe
                  else "all copies kept; data.dedupe=true keeps one")
        warnings.warn(f"{summary(self.duplicates)} under {self.root}; {action}"
                      + (f"; list in {listing}" if listing else ""), stacklevel=2)

    @rank_zero_only
    def _write_manifest(self, scan: ScanResult, assignment: list[str]) -> str:
        return write_manifest(self.output_dir / MANIFEST_FILE, self.root, scan.samples, assignment,
                              scan.class_names, self.of_fold)


def index_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a ``data`` config that a :class:`DataIndex` takes, resolved (and only those: the loader keys of a
    training config refer to the model, which ``evaluate`` has none of)."""
    return {key: settings[key] for key in signature(DataIndex).parameters if key in settings}


@rank_zero_only
def _write_problems(path: Path, problems: list[DataProblem]) -> None:
    write_csv(path, [{"file": p.file, "problem": p.problem, "action": p.action} for p in problems],
              ("file", "problem", "action"))
