"""Whether a run trains its head on cached features, and the data module that then serves them.

``garbage_lit.train`` decides before ``fit``, where both the model and the trainer's callbacks are known
(:func:`feature_datamodule`). On cached features the model trains with its backbone detached
(:func:`backbone_detached`): its checkpoints hold the head, and the run assembles the whole classifier
once, at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn
from torch.utils.data import DataLoader

from garbage_lit.data.datamodule import GarbageDataModule
from garbage_lit.data.samples import content_ids
from garbage_lit.errors import CheckpointError, ConfigError
from garbage_lit.features.cache import cached_features, module_fingerprint
from garbage_lit.features.dataset import FeatureDataset

log = logging.getLogger(__name__)


def feature_cache_decision(mode: bool | str, backbone: nn.Module, callbacks: Sequence[object] = (),
                           world_size: int = 1, mixes_batches: bool = False,
                           flips_images: bool = False) -> tuple[bool, str]:
    """Whether training may use cached features (``feature_cache``: true, false or auto), and why.

    Exact only when no backbone parameter is trainable now and no fine-tuning callback will make one
    trainable later. ``true`` with a backbone that trains is an error rather than a silently frozen backbone.
    Cached features are served by one process (``world_size`` 1): under DDP ``auto`` falls back to images.
    A batch transform that mixes training images (``mixes_batches``, e.g. MixUp) needs the images themselves, and
    so does test-time flip averaging (``flips_images``): cached features are of the unmixed, unflipped images.
    """
    setting = f"cache.features={str(mode).lower()}"
    if mode is False:
        return False, setting
    finetuning = next((type(c).__name__ for c in callbacks if isinstance(c, BaseFinetuning)), None)
    if any(p.requires_grad for p in backbone.parameters()):
        reason = "model.freeze_backbone=false trains the backbone, so its features change every step"
    elif finetuning is not None:
        reason = (f"the {finetuning} callback (callbacks.backbone_finetuning, e.g. experiment=finetune) unfreezes "
                  f"the backbone during training")
    elif mixes_batches:
        reason = "data.batch_transform mixes the training images of each batch, and cached features are of unmixed ones"
    elif flips_images:
        reason = ("model.flip_tta averages each evaluated image with its mirror image, and cached features are of the "
                  "images as they are")
    elif world_size > 1:
        if mode == "auto":
            return False, f"{setting} is off: cached features are served to one process, this run has {world_size}"
        raise ConfigError(f"{setting} cannot be used with {world_size} processes (DDP): cached features are served "
                         f"to one process. Set cache.features=auto (images under DDP) or run on one device")
    else:
        return True, f"{setting}: the backbone stays frozen for the whole run"
    if mode == "auto":
        return False, f"{setting} is off: {reason}"
    raise ConfigError(f"{setting} cannot be used here: {reason}, and cached features would keep "
                     f"it frozen without saying so. Set cache.features=false (or auto), or keep the backbone "
                     f"frozen (model.freeze_backbone=true, no callbacks.backbone_finetuning)")


class FeatureDataModule(pl.LightningDataModule):
    """Serves the splits of an image data module as ``backbone``'s cached features, with their labels.

    Training images get ``views`` augmented views when the image module augments them (one per epoch is
    drawn), the evaluation splits one. Features are computed on the trainer's device and kept there.
    Checkpoints record the backbone's fingerprint, so a resumed run refuses features of other weights.
    """

    def __init__(self, images: GarbageDataModule, backbone: nn.Module, backbone_name: str, views: int,
                 cache_dir: str | Path) -> None:
        super().__init__()
        self.images, self.backbone, self.backbone_name = images, backbone, backbone_name
        self.views, self.cache_dir = views, Path(cache_dir).expanduser()
        self.fingerprint = module_fingerprint(backbone)
        self._sets: dict[str, FeatureDataset] = {}

    # what callbacks read from the trainer's data module, as from the image module
    @property
    def root(self) -> Path:
        return self.images.root

    @property
    def splits(self) -> dict[str, list]:
        return self.images.splits

    @property
    def eval_splits(self) -> list[str]:
        return self.images.eval_splits

    def setup(self, stage: str) -> None:
        self.images.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.features("train").loader(self.images.hparams.batch_size, shuffle=True,
                                             seed=self.images.hparams.seed)

    def val_dataloader(self) -> list[DataLoader]:
        return [self.features(split).loader(self.images.hparams.batch_size, shuffle=False)
                for split in self.eval_splits]

    def test_dataloader(self) -> DataLoader:
        return self.features("test").loader(self.images.hparams.batch_size, shuffle=False)

    def state_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone_name, "backbone_fingerprint": self.fingerprint}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to continue a head trained on the features of other backbone weights."""
        if state_dict.get("backbone_fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"this checkpoint's head was trained on cached features of the {state_dict.get('backbone')} backbone "
                f"with weights {str(state_dict.get('backbone_fingerprint'))[:12]}..., but the backbone built now "
                f"({self.backbone_name}) has weights {self.fingerprint[:12]}...: resume with the model config the run "
                f"was trained with (the same model.arch and model.weights)")

    def features(self, split: str) -> FeatureDataset:
        """``split``'s features (computed into the cache the first time any run asks for them) and labels."""
        if split not in self._sets:
            hp = self.images.hparams
            augmented = split == "train" and self.images.augments_training
            samples = self.images.splits[split]
            device = self.trainer.strategy.root_device if self.trainer else next(self.backbone.parameters()).device
            home = next(self.backbone.parameters()).device
            self.backbone.to(device)
            try:
                path = cached_features(self.backbone, self.backbone_name,
                                       self.images.dataset(split, train=augmented), content_ids(samples),
                                       self.images.transform_settings(split, train=augmented),
                                       self.views if augmented else 1, self.cache_dir,
                                       batch_size=hp.batch_size, num_workers=hp.num_workers,
                                       fingerprint=self.fingerprint)
            finally:
                self.backbone.to(home)
            self._sets[split] = FeatureDataset(path, [s.label for s in samples], device)
            log.info("feature cache: %s split served from %s (%d view(s))", split, path.parent,
                     self._sets[split].views)
        return self._sets[split]


def feature_datamodule(mode: bool | str, views: int, cache_dir: str | Path, images: GarbageDataModule,
                       model: pl.LightningModule, trainer: pl.Trainer) -> FeatureDataModule | None:
    """The feature data module when ``model``'s backbone stays frozen in ``trainer`` (None: train on images)."""
    use, reason = feature_cache_decision(mode, model.backbone, trainer.callbacks, trainer.world_size,
                                         mixes_batches=images.batch_transform is not None,
                                         flips_images=model.hparams.get("flip_tta", False))
    log.info("feature cache %s (%s)", "on" if use else "off", reason)
    return FeatureDataModule(images, model.backbone, model.hparams.arch, views, cache_dir) if use else None


@contextmanager
def backbone_detached(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with an identity in place of its ``backbone`` (so its head takes features); put back on exit."""
    backbone = model.backbone
    model.backbone = nn.Identity()
    try:
        yield backbone
    finally:
        model.backbone = backbone
