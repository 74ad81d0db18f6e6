"""The LightningDataModule: the data index's splits served as loaders, with their preprocessing and augmentation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from garbage_lit.data.datasets import ImageDataset
from garbage_lit.data.duplicates import DuplicateGroup
from garbage_lit.data.image_cache import DecodedImageDataset, decoded_images
from garbage_lit.data.index import DataIndex
from garbage_lit.data.samples import Sample, ScanResult
from garbage_lit.data.sampling import EpochSampler, ResumableLoader, draw_seed
from garbage_lit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms, epoch_transforms, kept_margin
from garbage_lit.errors import DataError

log = logging.getLogger(__name__)

BATCH_STREAM = 1  # the batch transform's draws, apart from the samples' (draw_seed's stream)
CALIBRATION_STREAM = 2  # the choice of BatchNorm calibration images


class GarbageDataModule(pl.LightningDataModule):
    """Serves the splits of the data under ``root`` as train / val / test loaders.

    ``root`` to ``output_dir`` (the split, bad files, duplicates, excluded photos, waste bins, the scan cache) are
    the :class:`~garbage_lit.data.index.DataIndex`'s settings: it finds, checks and splits the images at set-up.

    ``eval_image_size`` / ``eval_resize_size`` (None: the training sizes) are the center crop and resize of the
    evaluated splits (val, test), and so of the model's :meth:`preprocessing`: testing at a larger size than
    training (FixRes) makes up for the random crops' zoom. Without ``eval_resize_size`` the training margin
    (``resize_size / image_size``) is kept at the new size.

    ``batch_transform`` (a partial taking ``num_classes``, e.g. torchvision's ``MixUp``/``CutMix``; see
    :mod:`garbage_lit.training.batch_transforms`) transforms each training batch ``(images, labels)`` once it is on the
    device, up to ``batch_transform_off_epoch`` (None: every epoch). ``seed`` (the run's) seeds the training order and
    every random draw of the data (:mod:`garbage_lit.data.sampling`), so a resumed run replays them exactly.

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
        test_every_epoch: bool = True,
        batch_transform: Callable[..., Callable] | None = None,
        batch_transform_off_epoch: int | None = None,
        seed: int = 0,
        exclude: str | Path | None = None,
        folds: int | None = None,
        fold: int = 0,
        fold_as: str = "test",
    ) -> None:
        super().__init__()
        # The batch transform's partial stays out of checkpoints, so they load with weights_only=True.
        self.save_hyperparameters(logger=False, ignore=["batch_transform"])
        self.batch_transform_factory = batch_transform
        self.batch_transform: Callable | None = None
        self._train_loader: ResumableLoader | None = None
        self.index = DataIndex(root, layout, test_ratio, val_ratio, split_seed, split_manifest, strict, dedupe, groups,
                               exclude, scan_cache, cache_dir, output_dir, folds, fold, fold_as)

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Build the data index once (scan, split, report); for training (``fit``, or no stage) also check that the
        split serves it, a training batch included (other stages, e.g. ``evaluate``'s ``test``, only scan and split)."""
        if self.index.scan is not None:
            return
        training = stage in (None, "fit")
        self.index.build(training)
        if self.batch_transform_factory is not None:
            self.batch_transform = self.batch_transform_factory(num_classes=self.index.num_classes)
        train = len(self.index.splits["train"])
        if training and self.hparams.batch_size > train:
            larger = [name for name in ("val", "test") if len(self.index.splits[name]) > train]
            held_out = self.index.held_out(max(larger, key=lambda name: len(self.index.splits[name]))) \
                if larger else None
            raise DataError(f"batch_size={self.hparams.batch_size} is larger than the training set ({train} images"
                            + (f": {held_out[0]}); {held_out[1]}, or set" if held_out else "); set")
                            + f" batch_size between 1 and {train}")

    # -- what the rest of the run needs to know (from the index) -------------------------------
    @property
    def root(self) -> Path:
        return self.index.root

    @property
    def scan(self) -> ScanResult | None:
        return self.index.scan

    @property
    def splits(self) -> dict[str, list[Sample]]:
        return self.index.splits

    @property
    def class_names(self) -> list[str]:
        return self.index.class_names

    @property
    def num_classes(self) -> int:
        return self.index.num_classes

    @property
    def class_bins(self) -> list[str] | None:
        return self.index.class_bins

    @property
    def duplicates(self) -> list[DuplicateGroup]:
        return self.index.duplicates

    @property
    def manifest_sha256(self) -> str | None:
        return self.index.manifest_sha256

    @property
    def train_class_counts(self) -> list[int]:
        """Training images of each class (e.g. for a class-weighted loss)."""
        return self.index.train_class_counts

    @property
    def eval_splits(self) -> list[str]:
        """Splits evaluated after every epoch, in val-dataloader order: val (if any), test (if test_every_epoch)."""
        return [name for name in ("val", "test")
                if self.splits.get(name) and (name != "test" or self.hparams.test_every_epoch)]

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

    # -- loaders --------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader(name) for name in self.eval_splits]

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def calibration_loader(self, images: int) -> DataLoader:
        """``images`` training images, a fixed choice seeded by the run's seed, with the evaluation preprocessing: what
        BatchNorm statistics are re-estimated on for evaluating at another size than training (FixRes)."""
        hp = self.hparams
        samples = self.splits["train"]
        chosen = torch.randperm(len(samples), generator=torch.Generator().manual_seed(
            draw_seed(hp.seed, -1, -1, stream=CALIBRATION_STREAM)))[:images].tolist()
        image_size, resize_size = self._sizes(training_split=False)
        dataset = ImageDataset([samples[i] for i in chosen], build_transforms(
            False, image_size, resize_size, mean=hp.mean, std=hp.std, interpolation=hp.interpolation))
        return DataLoader(dataset, batch_size=hp.batch_size, num_workers=hp.num_workers)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """``split``'s loader. Training's is a :class:`~garbage_lit.data.sampling.ResumableLoader` (its order and
        transforms drawn from seeds of the run, its position in checkpoints), but under DDP, where Lightning deals the
        images; every loader draws its workers' seeds from its own generator, not the process's."""
        hp = self.hparams
        options = {"num_workers": hp.num_workers, "pin_memory": hp.pin_memory,
                   "persistent_workers": hp.persistent_workers and hp.num_workers > 0}
        dataset = self.dataset(split, train=split == "train")
        if split == "train" and (self.trainer is None or self.trainer.world_size == 1):
            self._train_loader = ResumableLoader(dataset, hp.batch_size, EpochSampler(len(dataset), shuffle, hp.seed),
                                                 **options)
            return self._train_loader
        return DataLoader(dataset, batch_size=hp.batch_size, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(hp.seed), **options)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """A training batch on its device goes through the batch transform (MixUp, CutMix) until
        ``batch_transform_off_epoch``, its draws seeded by the run's seed, the epoch and the batch; other batches as
        they are."""
        off = self.hparams.batch_transform_off_epoch
        trainer = self.trainer
        if self.batch_transform is None or trainer is None or not trainer.training \
                or (off is not None and trainer.current_epoch >= off):
            return batch
        position = self._train_loader.position if self._train_loader is not None else trainer.global_step
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw_seed(self.hparams.seed, trainer.current_epoch, position, stream=BATCH_STREAM))
            return self.batch_transform(*batch)

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
            raise DataError("cache.images=true needs cache.dir to name a folder")
        return Path(self.hparams.cache_dir).expanduser()
