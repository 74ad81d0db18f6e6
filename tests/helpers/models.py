"""Classifier checkpoints made without training, to test loading, evaluation and export."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from garbage_lit.models import GarbageClassifier


def save_untrained_checkpoint(path: Path, backbone: str, class_names: list[str], image_size: int = 32,
                              weights: str = "none") -> Path:
    """A real Lightning checkpoint of a freshly built classifier (no training needed to test loading)."""
    model = GarbageClassifier(backbone, len(class_names), class_names, weights=weights,
                              preprocessing={"image_size": image_size, "resize_size": image_size + 4,
                                             "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
                                             "std": [0.229, 0.224, 0.225]})
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path
