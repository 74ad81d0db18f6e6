"""Checkpoints: written so that a kill at any moment cannot corrupt them, and loaded back for evaluation,
prediction or export with the model's classes and preprocessing.

Checkpoints carry the backbone's zoo and architecture, class names and evaluation preprocessing in their
hyperparameters, so nothing else (no training config, no ImageNet weights) is needed to use them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from torchvision.transforms import v2

from garbage_lit.data.transforms import build_transforms
from garbage_lit.models.classifier import BACKBONE_FINGERPRINT, GarbageClassifier
from garbage_lit.run.folder import CHECKPOINT_DIR, atomic_write

PREPROCESSING_KEYS = ("image_size", "resize_size", "mean", "std")
DEFAULT_INTERPOLATION = "bilinear"  # checkpoints written before data.interpolation existed were trained with it


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside its target, flush it to disk, then rename it
    (:func:`~garbage_lit.run.folder.atomic_write`).

    ``os.replace`` within one folder is atomic, so ``last.ckpt`` is always either the previous
    complete checkpoint or the new complete one. (Lightning's default goes through a temporary
    file in the system temp folder and then *moves* it, which is a copy when that folder sits on
    another file system, and leaves the temporary file behind when the process is killed.)
    Remote paths (``s3://`` and the like) keep Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:  # on a full disk: OSError "No space left on device: '<path>'"
            torch.save(checkpoint, handle)


class RelocatableCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose restored file paths follow its current ``dirpath``.

    Lightning restores ``best_model_path`` as saved (absolute) even when ``dirpath`` changed, and then forgets
    the best score and the kept files: a run folder moved or copied elsewhere and resumed there would write
    its final checkpoint into the old folder and choose its best epoch among the new epochs only.
    """

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's own key, so a checkpoint written by either class resumes with the other."""
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = state_dict.get("dirpath")
        if saved_dir and self.dirpath and saved_dir != self.dirpath:
            state_dict = _relocated(state_dict, saved_dir, self.dirpath)
        super().load_state_dict(state_dict)


def _relocated(state: dict[str, Any], old_dir: str, new_dir: str) -> dict[str, Any]:
    """A ModelCheckpoint ``state`` with each path inside ``old_dir`` at the same place inside ``new_dir``."""
    def move(path: str) -> str:
        relative = os.path.relpath(path, old_dir) if path else ".."
        return path if relative.startswith("..") else os.path.join(new_dir, relative)

    paths = {key: move(state.get(key) or "") for key in ("best_model_path", "kth_best_model_path", "last_model_path")}
    return {**state, **paths, "dirpath": new_dir,
            "best_k_models": {move(path): score for path, score in (state.get("best_k_models") or {}).items()}}


def complete_checkpoints(trainer: pl.Trainer, model: GarbageClassifier, paths: list[str | Path | None]) -> None:
    """Make the head-only checkpoints among ``paths`` self-contained again by adding ``model``'s frozen backbone.

    Checkpoints written while training on cached features leave the backbone out (see
    :meth:`GarbageClassifier.restore_backbone`); a run's final ones must load without the training config.
    """
    if not trainer.is_global_zero:
        return
    # In the order given, once each file (last.ckpt may link to the kept epoch's): the last of them stays the newest
    # file, which resume continues from.
    for path in dict.fromkeys(os.path.realpath(p) for p in paths if p):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if model.restore_backbone(checkpoint):
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)


def load_classifier(ckpt: str | Path) -> GarbageClassifier:
    """The classifier saved in ``ckpt``, on the CPU and in eval mode.

    ``weights="none"`` skips fetching ImageNet weights: the checkpoint's state dict replaces them anyway.
    """
    path = Path(ckpt).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={ckpt}: no such checkpoint file; point ckpt= at a .ckpt written by "
                                f"training (e.g. outputs/<run>/checkpoints/last.ckpt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # no tensor read
        if BACKBONE_FINGERPRINT in checkpoint:
            run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
            raise ValueError(f"ckpt={path} holds only the head: it was written while training on cached backbone "
                             f"features, and its run stopped before making its final checkpoints self-contained. "
                             f"Resume that run to finish it (add ckpt_path={run_dir} to its training command), "
                             f"then use its checkpoints")
        hparams = checkpoint.get("hyper_parameters") or {}
        # Checkpoints written before model.arch / model.zoo named the architecture model.backbone.
        legacy = {"arch": hparams["backbone"]} if "arch" not in hparams and "backbone" in hparams else {}
        model = GarbageClassifier.load_from_checkpoint(path, weights="none", map_location="cpu", weights_only=True,
                                                       **legacy)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise ValueError(f"ckpt={path} is not a garbage-lit classifier checkpoint ({type(exc).__name__}: {exc})") \
            from exc
    missing = [key for key in PREPROCESSING_KEYS if key not in (model.hparams.get("preprocessing") or {})]
    if missing:
        raise ValueError(f"ckpt={path} does not record its preprocessing ({', '.join(missing)} missing); "
                         f"it was not written by garbage_lit.train")
    return model.eval()


def preprocessing_of(model: GarbageClassifier) -> dict:
    """``image_size``, ``resize_size``, ``interpolation``, ``mean`` and ``std`` the model was trained with."""
    recorded = model.hparams.preprocessing
    return {**{key: recorded[key] for key in PREPROCESSING_KEYS},
            "interpolation": recorded.get("interpolation", DEFAULT_INTERPOLATION)}


def eval_transform(model: GarbageClassifier) -> v2.Compose:
    """The evaluation transform (resize, center crop, to tensor, normalize) the model expects."""
    pre = preprocessing_of(model)
    return build_transforms(False, pre["image_size"], pre["resize_size"], mean=pre["mean"], std=pre["std"],
                            interpolation=pre["interpolation"])


def inference_trainer(output_dir: str | Path | None = None, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """A quiet single-device Trainer for ``Trainer.predict`` (no logger, no checkpoints)."""
    return pl.Trainer(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=output_dir,
                      callbacks=callbacks)
