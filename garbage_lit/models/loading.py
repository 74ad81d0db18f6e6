"""A trained model loaded back from its checkpoint for evaluation, prediction or export, with its classes and
preprocessing.

Checkpoints carry the backbone's zoo and architecture, class names and evaluation preprocessing in their
hyperparameters, so nothing else (no training config, no ImageNet weights) is needed to use them. A run's
self-contained model is ``checkpoints/model.ckpt``, written once at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torchvision.transforms import v2

from garbage_lit.data.transforms import build_transforms, kept_margin
from garbage_lit.errors import CheckpointError
from garbage_lit.models.classifier import GarbageClassifier
from garbage_lit.models.inference import Ensemble
from garbage_lit.records.folder import CHECKPOINT_DIR, MODEL_FILE

PREPROCESSING_KEYS = ("image_size", "resize_size", "interpolation", "mean", "std")


def load_classifier(ckpt: str | Path) -> GarbageClassifier:
    """The classifier saved in ``ckpt``, on the CPU and in eval mode.

    ``weights="none"`` skips fetching ImageNet weights: the checkpoint's state dict replaces them anyway.
    """
    path = Path(ckpt).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt={ckpt}: no such checkpoint file; point ckpt= at a .ckpt written by "
                                f"training (e.g. outputs/<run>/{Path(CHECKPOINT_DIR) / MODEL_FILE})")
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("state_dict") or {}  # no tensor read
    if state and not any(key.startswith("backbone.") for key in state):
        run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        raise CheckpointError(f"ckpt={path} holds only the head: it is a training checkpoint of a run on cached "
                              f"backbone features. Evaluate, predict and export take the run's whole model, "
                              f"{run_dir / CHECKPOINT_DIR / MODEL_FILE}; if the run stopped before writing it, "
                              f"resume the run (add ckpt_path={run_dir} to its training command)")
    try:
        model = GarbageClassifier.load_from_checkpoint(path, weights="none", map_location="cpu", weights_only=True)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"ckpt={path} is not a garbage-lit classifier checkpoint "
                              f"({type(exc).__name__}: {exc})") \
            from exc
    missing = [key for key in PREPROCESSING_KEYS if key not in (model.hparams.get("preprocessing") or {})]
    if missing:
        raise CheckpointError(f"ckpt={path} does not record its preprocessing ({', '.join(missing)} missing); "
                         f"it was not written by garbage_lit.train")
    return model.eval()


def load_for_inference(ckpt: str | Path | Sequence[str | Path], flip_tta: bool | None = None,
                       image_size: int | None = None, resize_size: int | None = None) -> Ensemble:
    """The classifier(s) of ``ckpt`` (one path or several: an ensemble averaging their class probabilities) as they
    are used on images: with horizontal-flip averaging if ``flip_tta`` (None: as the checkpoints were trained to be
    used, ``model.flip_tta``), at the test-time crop ``image_size`` and resize ``resize_size`` (None: the
    checkpoints'; a new crop alone keeps their margin).

    The checkpoints of an ensemble must share their classes, their flip setting and (after the sizes given here)
    their preprocessing; an error names the two that differ and how.
    """
    paths = checkpoint_paths(ckpt)
    models = [load_classifier(path) for path in paths]
    settings = [_inference_settings(model, flip_tta, image_size, resize_size) for model in models]
    for path, model, setting in zip(paths[1:], models[1:], settings[1:]):
        differing = {key: (settings[0][key], setting[key]) for key in setting if setting[key] != settings[0][key]}
        if model.class_names != models[0].class_names:
            differing["class_names"] = (models[0].class_names, model.class_names)
        if differing:
            said = "; ".join(f"{key} {first} there, {this} here" for key, (first, this) in differing.items())
            raise CheckpointError(f"ckpt={path} cannot be averaged with ckpt={paths[0]}: {said}"
                             + ". An ensemble's checkpoints must agree: set image_size=, resize_size= or flip_tta= "
                               "for all of them, or ensemble checkpoints of the same classes")
    flip = settings[0].pop("flip_tta")
    return Ensemble(models, settings[0], flip).eval()


def checkpoint_paths(ckpt: str | Path | Sequence[str | Path]) -> list[Path]:
    """``ckpt=`` as a list of paths: one checkpoint, or several (an ensemble)."""
    paths = [Path(ckpt)] if isinstance(ckpt, (str, Path)) else [Path(path) for path in ckpt]
    if not paths:
        raise CheckpointError("ckpt=[] names no checkpoint; give one path or a list of them")
    return paths


def _inference_settings(model: GarbageClassifier, flip_tta: bool | None, image_size: int | None,
                        resize_size: int | None) -> dict[str, Any]:
    pre = preprocessing_of(model)
    if image_size is not None:
        pre.update(image_size=image_size, resize_size=resize_size or kept_margin(image_size, pre["image_size"],
                                                                                   pre["resize_size"]))
    elif resize_size is not None:
        pre["resize_size"] = resize_size
    return {**pre, "flip_tta": bool(model.hparams.get("flip_tta", False)) if flip_tta is None else bool(flip_tta)}


def preprocessing_of(model: GarbageClassifier | Ensemble) -> dict:
    """``image_size``, ``resize_size``, ``interpolation``, ``mean`` and ``std`` the model was trained with."""
    return {key: model.hparams.preprocessing[key] for key in PREPROCESSING_KEYS}


def eval_transform(model: GarbageClassifier | Ensemble) -> v2.Compose:
    """The evaluation transform (resize, center crop, to tensor, normalize) the model expects."""
    pre = preprocessing_of(model)
    return build_transforms(False, pre["image_size"], pre["resize_size"], mean=pre["mean"], std=pre["std"],
                            interpolation=pre["interpolation"])


def inference_trainer(output_dir: str | Path | None = None, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """A quiet single-device Trainer for ``Trainer.predict`` (no logger, no checkpoints)."""
    return pl.Trainer(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=output_dir,
                      callbacks=callbacks)
