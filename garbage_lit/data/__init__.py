"""Datasets, splits and the LightningDataModule."""

from garbage_lit.data.datamodule import GarbageDataModule
from garbage_lit.errors import DataError

__all__ = ["DataError", "GarbageDataModule"]
