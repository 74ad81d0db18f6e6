"""Backbones and the shared classifier LightningModule."""

from garbage_lit.models.backbones import BACKBONES, create_backbone
from garbage_lit.models.classifier import GarbageClassifier

__all__ = ["BACKBONES", "GarbageClassifier", "create_backbone"]
