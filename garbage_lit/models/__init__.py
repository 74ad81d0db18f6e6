"""Backbones and the shared classifier LightningModule."""

from garbage_lit.models.backbones import create_backbone
from garbage_lit.models.classifier import GarbageClassifier

__all__ = ["GarbageClassifier", "create_backbone"]
