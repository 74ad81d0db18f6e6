"""The LightningDataModule that owns scanning, the split, bad-file handling and augmentation."""

from __future__ import annotations

import csv
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytorch_lightning as pl
from lightning_utilities.core.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from garbage_lit.data.duplicates import DuplicateGroup, dropped_by_dedupe, find_duplicates, summary, write_duplicates
from garbage_lit.data.exclude import drop_excluded
from garbage_lit.data.groups import class_bins
from garbage_lit.data.image_cache import DecodedImageDataset, decoded_images
from garbage_lit.data.images import ImageDataset
from garbage_lit.data.samples import DataError, DataProblem, Sample, ScanResult
from garbage_lit.data.scan import scan_dataset
from garbage_lit.data.split import SPLITS, images_to_reach, read_manifest, stratified_split, write_manifest
from garbage_lit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CollateThen,
    build_transforms,
    epoch_transforms,
    kept_margin,
)
from garbage_lit.run.folder import DUPLICATES_FILE, MANIFEST_FILE, PROBLEMS_FILE

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
TYPICAL_RATIO = {"test": 0.2, "val": 0.1}  # suggested when a ratio leaves too few training images


class GarbageDataModule(pl.LightningDataModule):
    """Scans ``root``, splits it stratified by class, and serves train / val / test loaders.

    Problems are found once, at set-up: bad files (left out), tiny images (kept) and classes too small
    to reach the test or validation split are listed in ``data_problems.csv`` in the run folder and
    summarised in one warning per kind; with ``strict=True`` any of them is an error before training
    starts. Files that are not images are listed there too, and counted in the log line, without a
    warning. The split is written to ``split_manifest.csv`` and can be reused with
    ``split_manifest``. Byte-identical images are listed in ``duplicates.csv``; ``dedupe=True``
    leaves out the training-side copies (see :mod:`garbage_lit.data.duplicates`), the manifest
    still records the split before that.

    ``groups`` maps classes to waste bins (a dict, or a YAML / CSV file; see :mod:`garbage_lit.data.groups`);
    garbage_classify's ``group/item`` classes have bins without it. ``class_bins`` is then the bin of each class.

    ``eval_image_size`` / ``eval_resize_size`` (None: the training sizes) are the center crop and resize of the
    evaluated splits (val, test), and so of the model's :meth:`preprocessing`: testing at a larger size than
    training (FixRes) makes up for the random crops' zoom. Without ``eval_resize_size`` the training margin
    (``resize_size / image_size``) is kept at the new size.

    ``batch_transform`` (a partial taking ``num_classes``, e.g. torchvision's ``MixUp``/``CutMix``) transforms each
    collated training batch ``(images, labels)``; its labels may come out soft (class probabilities), which the
    classifier's loss takes as they are.

    ``exclude`` names a list of photos to leave out (one path per line, relative to ``root``; see
    :mod:`garbage_lit.data.exclude`): they are dropped before the split and listed in ``data_problems.csv``.

    ``scan_cache`` keeps each file's check result in ``cache_dir``, so later jobs skip re-reading unchanged files.
    ``image_cache`` serves images from a decoded-image cache in ``cache_dir``. (Cached backbone features are
    :mod:`garbage_lit.features`' business: they need the model too.)
    """

    def __init__(
        self,
        root: str | Path,
        layout: str = "folder",
        test_ratio: float = 0.2,
        val_ratio: float = 0.0,
        split_seed: int = 0,
        split_manifest: str | Path | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        image_size: int = 224,
        resize_size: int = 256,
        eval_image_size: int | None = None,
        eval_resize_size: int | None = None,
        interpolation: str = "bilinear",
        rotation_degrees: float = 15.0,
        augment: str = "paper",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        strict: bool = False,
        dedupe: bool = False,
        output_dir: str | Path | None = None,
        image_cache: bool = False,
        cache_dir: str | Path | None = None,
        groups: str | Path | dict[str, str] | None = None,
        scan_cache: bool = True,
        eval_test: bool = True,
        batch_transform: Callable[..., Callable] | None = None,
        exclude: str | Path | None = None,
    ) -> None:
        super().__init__()
        # The batch transform's partial stays out of checkpoints, so they load with weights_only=True.
        self.save_hyperparameters(logger=False, ignore=["batch_transform"])
        self.batch_transform_factory = batch_transform
        self.batch_transform: Callable | None = None
        self.root = Path(root).expanduser().resolve()
        self.output_dir = Path(output_dir) if output_dir else None
        self.scan: ScanResult | None = None
        self.splits: dict[str, list[Sample]] = {}
        self.manifest_sha256: str | None = None
        self.class_bins: list[str] | None = None
        self.duplicates: list[DuplicateGroup] = []

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Scan, split and report the data once; for training (``fit``, or no stage) also check the split serves it.

        Training needs every class in the test split (and in the validation split when there is one) and
        a training split that holds a batch; other stages (``evaluate`` sets up ``test``) only scan and split.
        """
        if self.scan is not None:
            return
        hp = self.hparams
        training = stage in (None, "fit")
        scan = scan_dataset(self.root, hp.layout, cache_dir=hp.cache_dir if hp.scan_cache else None)
        scan, excluded = drop_excluded(scan, hp.exclude) if hp.exclude else (scan, [])
        self.class_bins = class_bins(scan.class_names, hp.groups)
        if self.batch_transform_factory is not None:
            self.batch_transform = self.batch_transform_factory(num_classes=scan.num_classes)
        if hp.split_manifest:
            assignment = read_manifest(Path(hp.split_manifest), self.root, scan.samples, scan.class_names)
        else:
            assignment = stratified_split([s.label for s in scan.samples], hp.test_ratio, hp.val_ratio,
                                          hp.split_seed)
        self.duplicates = find_duplicates(scan.samples, assignment)
        dropped = dropped_by_dedupe(self.duplicates, assignment) if hp.dedupe else set()
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
        hp = self.hparams
        if hp.split_manifest:
            return f"the split manifest {hp.split_manifest} gives it no {' or '.join(splits)} image"
        needs = [f"{images_to_reach(name, hp.test_ratio, hp.val_ratio)} images to reach the {SPLIT_NAMES[name]} "
                 f"split (data.{name}_ratio={hp.test_ratio if name == 'test' else hp.val_ratio})" for name in splits]
        return "a class needs " + " and ".join(needs)

    def _check_training_split(self) -> None:
        """Refuse a split without training or test images or a full batch; warn when val or test outnumber train.

        Both messages name the ratio (or the manifest) that held out the largest split.
        """
        hp = self.hparams
        sizes = {name: len(samples) for name, samples in self.splits.items()}
        train = sizes["train"]
        if not train or not sizes["test"]:
            raise DataError(f"{self.root}: the split left {train} training and {sizes['test']} test images; every "
                            f"class needs at least {images_to_reach('test', hp.test_ratio, hp.val_ratio)} images "
                            f"with data.test_ratio={hp.test_ratio} (or raise data.test_ratio)")
        larger = [name for name in ("val", "test") if sizes[name] > train]
        cause = self._held_out(max(larger, key=sizes.get), sizes) if larger else None
        if hp.batch_size > train:
            if cause is None:
                raise DataError(f"batch_size={hp.batch_size} is larger than the training set ({train} images); "
                                f"batch_size must be between 1 and {train}")
            raise DataError(f"batch_size={hp.batch_size} is larger than the training set ({train} images: "
                            f"{cause[0]}); {cause[1]}, or set batch_size between 1 and {train}")
        if cause is not None:
            warnings.warn(f"the training split ({train} images) is smaller than the "
                          + " and the ".join(f"{SPLIT_NAMES[name]} split ({sizes[name]})" for name in larger)
                          + f": {cause[0]}; {cause[1]}", stacklevel=2)

    def _held_out(self, split: str, sizes: dict[str, int]) -> tuple[str, str]:
        """Which ratio (or manifest) held out the images of ``split``, in numbers, and the fix."""
        hp = self.hparams
        if hp.split_manifest:
            return (f"the split manifest {hp.split_manifest} puts {sizes[split]} images in {split}",
                    "use a split manifest that keeps more images for training")
        if split == "test":
            return (f"data.test_ratio={hp.test_ratio} holds out {sizes['test']} of the {sum(sizes.values())} "
                    f"images for testing", f"lower data.test_ratio (e.g. {TYPICAL_RATIO['test']})")
        return (f"data.val_ratio={hp.val_ratio} holds out {sizes['val']} of the {sizes['train'] + sizes['val']} "
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
        if self.hparams.strict:
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
                                             self.duplicates, dropped, self.hparams.dedupe)
        action = (f"data.dedupe=true left out {len(dropped)} training-side copies" if self.hparams.dedupe
                  else "all copies kept; data.dedupe=true keeps one")
        warnings.warn(f"{summary(self.duplicates)} under {self.root}; {action}"
                      + (f"; list in {listing}" if listing else ""), stacklevel=2)

    @rank_zero_only
    def _write_manifest(self, scan: ScanResult, assignment: list[str]) -> str:
        return write_manifest(self.output_dir / MANIFEST_FILE, self.root, scan.samples, assignment,
                              scan.class_names)

    # -- what the rest of the run needs to know -------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return self._require_scan().class_names

    @property
    def num_classes(self) -> int:
        return self._require_scan().num_classes

    @property
    def eval_splits(self) -> list[str]:
        """Splits evaluated after every epoch, in val-dataloader order: val (when present), test (if eval_test)."""
        return [name for name in ("val", "test")
                if self.splits.get(name) and (name != "test" or self.hparams.eval_test)]

    @property
    def train_class_counts(self) -> list[int]:
        """Training images of each class (e.g. for a class-weighted loss)."""
        counts = Counter(s.label for s in self.splits["train"])
        return [counts[label] for label in range(self.num_classes)]

    def preprocessing(self) -> dict:
        """The evaluation-time preprocessing, stored in checkpoints so predict needs no config."""
        hp = self.hparams
        image_size, resize_size = self._sizes(training_split=False)
        return {"image_size": image_size, "resize_size": resize_size, "interpolation": hp.interpolation,
                "mean": list(hp.mean), "std": list(hp.std)}

    def _sizes(self, training_split: bool) -> tuple[int, int]:
        """Crop and resize size of the training split, or of the evaluated splits."""
        hp = self.hparams
        if training_split or not hp.eval_image_size:
            return hp.image_size, hp.resize_size
        return hp.eval_image_size, hp.eval_resize_size or kept_margin(hp.eval_image_size, hp.image_size,
                                                                       hp.resize_size)

    def _require_scan(self) -> ScanResult:
        if self.scan is None:
            raise RuntimeError("call setup() before asking the data module about its classes")
        return self.scan

    # -- loaders --------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader(name) for name in self.eval_splits]

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        hp = self.hparams
        mixed = split == "train" and self.batch_transform is not None
        return DataLoader(self.dataset(split, train=split == "train"), batch_size=hp.batch_size, shuffle=shuffle,
                          num_workers=hp.num_workers, pin_memory=hp.pin_memory,
                          persistent_workers=hp.persistent_workers and hp.num_workers > 0,
                          collate_fn=CollateThen(self.batch_transform) if mixed else None)

    @property
    def augments_training(self) -> bool:
        """Whether training images are randomly transformed (so no two epochs see quite the same pixels)."""
        return bool(self.hparams.rotation_degrees) or self.hparams.augment == "strong"

    def transform_settings(self, split: str, train: bool) -> dict:
        """Every setting that decides what :meth:`dataset` yields for ``split`` and ``train``: what caches of it are
        keyed by."""
        augmented = train and self.augments_training
        image_size, resize_size = self._sizes(training_split=split == "train")
        return {**self.preprocessing(), "image_size": image_size, "resize_size": resize_size,
                "rotation_degrees": self.hparams.rotation_degrees if augmented else 0,
                "augment": self.hparams.augment if augmented else "none"}

    def dataset(self, split: str, train: bool) -> Dataset:
        """The images of ``split`` with (training if ``train``) transforms, from the decoded-image cache if enabled.

        The training split is cropped at the training size, augmented or not, the others at the evaluation size.
        """
        hp = self.hparams
        samples = self.splits[split]
        image_size, resize_size = self._sizes(training_split=split == "train")
        strong = train and hp.augment == "strong"  # its random crops need the whole image, not the cached crop
        if not hp.image_cache or strong:
            return ImageDataset(samples, build_transforms(train, image_size, resize_size,
                                                          hp.rotation_degrees, hp.mean, hp.std, hp.augment,
                                                          hp.interpolation))
        path = decoded_images(samples, image_size, resize_size, self._cache_dir(),
                              workers=max(hp.num_workers, 1), interpolation=hp.interpolation)
        return DecodedImageDataset(path, [s.label for s in samples],
                                   epoch_transforms(train, hp.rotation_degrees, hp.mean, hp.std))

    def _cache_dir(self) -> Path:
        if self.hparams.cache_dir is None:
            raise DataError("data.image_cache=true needs data.cache_dir (default: paths.cache_dir) to name a folder")
        return Path(self.hparams.cache_dir).expanduser()


@rank_zero_only
def _write_problems(path: Path, problems: list[DataProblem]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "problem", "action"])
        writer.writerows([p.file, p.problem, p.action] for p in problems)
