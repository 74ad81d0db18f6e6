"""The LightningDataModule that owns scanning, the split, bad-file handling and augmentation."""

from __future__ import annotations

import csv
import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
from lightning_utilities.core.rank_zero import rank_zero_only
from torch.utils.data import DataLoader

from garbage_lit.data.dataset import ImageDataset
from garbage_lit.data.scan import DataError, DataProblem, Sample, ScanResult, scan_dataset
from garbage_lit.data.split import read_manifest, stratified_split, write_manifest
from garbage_lit.data.transforms import build_transforms

log = logging.getLogger(__name__)

MANIFEST_NAME = "split_manifest.csv"
PROBLEMS_NAME = "data_problems.csv"


class GarbageDataModule(pl.LightningDataModule):
    """Scans ``root``, splits it stratified by class, and serves train / val / test loaders.

    Bad files are found once, at set-up: they are listed in ``data_problems.csv`` in the run
    folder, summarised in one warning and left out; with ``strict=True`` any problem is an error
    before training starts. The split is written to ``split_manifest.csv`` and can be reused with
    ``split_manifest``.
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
        rotation_degrees: float = 15.0,
        augment: str = "paper",
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        strict: bool = False,
        output_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.root = Path(root).expanduser().resolve()
        self.output_dir = Path(output_dir) if output_dir else None
        self.scan: ScanResult | None = None
        self.splits: dict[str, list[Sample]] = {}
        self.manifest_sha256: str | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.scan is not None:
            return
        hp = self.hparams
        if hp.batch_size < 1:
            raise DataError(f"batch_size={hp.batch_size} must be a positive integer")
        scan = scan_dataset(self.root, hp.layout)
        self._report_problems(scan.problems)
        if hp.split_manifest:
            assignment = read_manifest(Path(hp.split_manifest), self.root, scan.samples, scan.class_names)
        else:
            assignment = stratified_split([s.label for s in scan.samples], hp.test_ratio, hp.val_ratio,
                                          hp.split_seed)
        self.splits = {name: [s for s, a in zip(scan.samples, assignment) if a == name]
                       for name in ("train", "val", "test")}
        if not self.splits["train"] or not self.splits["test"]:
            raise DataError(f"{self.root}: the split left {len(self.splits['train'])} training and "
                            f"{len(self.splits['test'])} test images; the dataset needs at least two images "
                            f"per class (or lower data.test_ratio)")
        if hp.batch_size > len(self.splits["train"]):
            raise DataError(f"batch_size={hp.batch_size} is larger than the training set "
                            f"({len(self.splits['train'])} images); lower batch_size")
        if self.output_dir is not None:
            self.manifest_sha256 = self._write_manifest(scan, assignment)
        self.scan = scan
        log.info("data: %s (%s layout), %d classes, split %s", self.root, scan.layout, scan.num_classes,
                 {k: len(v) for k, v in self.splits.items()})

    def _report_problems(self, problems: list[DataProblem]) -> None:
        if not problems:
            return
        listing = self.output_dir / PROBLEMS_NAME if self.output_dir else None
        if listing is not None:
            _write_problems(listing, problems)
        examples = "; ".join(f"{p.file}: {p.problem}" for p in problems[:3])
        if self.hparams.strict:
            raise DataError(f"data.strict=true and {len(problems)} problem(s) were found under {self.root}: "
                            f"{examples}" + (f" (full list: {listing})" if listing else "")
                            + "; fix the files or set data.strict=false to leave them out")
        counts = Counter(p.action for p in problems)
        warnings.warn(f"{len(problems)} data problem(s) under {self.root} ({dict(counts)}), e.g. {examples}"
                      + (f"; full list in {listing}" if listing else ""), stacklevel=2)

    @rank_zero_only
    def _write_manifest(self, scan: ScanResult, assignment: list[str]) -> str:
        return write_manifest(self.output_dir / MANIFEST_NAME, self.root, scan.samples, assignment,
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
        """Splits evaluated after every epoch, in val-dataloader order: val (when present), test."""
        return [name for name in ("val", "test") if self.splits.get(name)]

    def preprocessing(self) -> dict:
        """The evaluation-time preprocessing, stored in checkpoints so predict needs no config."""
        hp = self.hparams
        return {"image_size": hp.image_size, "resize_size": hp.resize_size, "mean": list(hp.mean),
                "std": list(hp.std)}

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
        transform = build_transforms(split == "train", hp.image_size, hp.resize_size, hp.rotation_degrees,
                                     hp.mean, hp.std, augment=hp.augment)
        return DataLoader(ImageDataset(self.splits[split], transform), batch_size=hp.batch_size, shuffle=shuffle,
                          num_workers=hp.num_workers, pin_memory=hp.pin_memory,
                          persistent_workers=hp.persistent_workers and hp.num_workers > 0)


@rank_zero_only
def _write_problems(path: Path, problems: list[DataProblem]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "problem", "action"])
        writer.writerows([p.file, p.problem, p.action] for p in problems)
