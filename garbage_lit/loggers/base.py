"""What every logger gets from a run beyond Lightning's per-epoch scalars, and the small protocol a tracker keeps.

Lightning logs the per-epoch and final metrics (``<split>/<name>``) to every logger as the run goes. Before training
each tracker plans the names it will log (:func:`plan_keys`: names its rules refuse are renamed, never dropped); the
final test's pictures reach each through :func:`log_png`; at the end of a job :func:`log_run_summary` gives each the
rest as the run folder records it (:class:`~garbage_lit.loggers.summary.RunSummary`). A logger that implements
:class:`Tracker` stores these its own way (TensorBoard, MLflow, W&B, each in its own module here); any other Lightning
logger (``CSVLogger``, one a user brings) gets the hyperparameters, and the pictures and tables as files in its folder
(:class:`FolderTracker`). So a new tracker is one module here plus ``conf/logger/<name>.yaml``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from garbage_lit.errors import ConfigError
from garbage_lit.loggers.summary import RunSummary, run_summary
from garbage_lit.records.tables import write_csv

log = logging.getLogger(__name__)


@runtime_checkable
class Tracker(Protocol):
    """A logger that keeps a run's summary, pictures and metric names its own way."""

    def plan_keys(self, keys: Iterable[str]) -> None:
        """Learn every metric name the run will log, before training (to rename what the tracker refuses)."""

    def log_png(self, tag: str, png: bytes, step: int) -> None:
        """Keep a picture (PNG bytes, drawn once for every logger) under ``tag``."""

    def log_summary(self, summary: RunSummary) -> None:
        """Keep the finished run's summary; end the tracker's run if it has one."""


class FolderTracker:
    """Any other Lightning logger: the hyperparameters through it, pictures and tables as files in its folder (when
    it has one: ``log_dir``), e.g. ``csv/test_confusion_matrix.png`` and ``csv/test_per_class.csv``."""

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        folder = getattr(logger, "log_dir", None)
        self.folder = Path(folder) if folder is not None else None

    def plan_keys(self, keys: Iterable[str]) -> None:
        """Nothing to plan: a folder takes any name."""

    def log_png(self, tag: str, png: bytes, step: int) -> None:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{tag.replace('/', '_')}.png").write_bytes(png)

    def log_summary(self, summary: RunSummary) -> None:
        self.logger.log_hyperparams(summary.hparams)
        for tag, png in summary.pictures.items():
            self.log_png(tag, png, summary.step)
        if self.folder is not None:
            for tag, rows in summary.tables.items():
                write_csv(self.folder / f"{tag.replace('/', '_')}.csv", rows)
        self.logger.save()


def as_tracker(logger: Logger) -> Tracker:
    """``logger`` itself when it keeps summaries its own way, else a :class:`FolderTracker` around it."""
    return logger if isinstance(logger, Tracker) else FolderTracker(logger)


def plan_keys(loggers: Sequence[Logger], keys: Iterable[str]) -> None:
    """Give every logger the metric names the run will log, before training starts."""
    keys = list(keys)
    for logger in loggers:
        as_tracker(logger).plan_keys(keys)


@rank_zero_only
def log_png(loggers: Sequence[Logger], tag: str, png: bytes, step: int) -> None:
    """One picture, drawn once, to every logger."""
    for logger in loggers:
        as_tracker(logger).log_png(tag, png, step)


@rank_zero_only
def log_run_summary(loggers: Sequence[Logger], cfg: DictConfig, run_dir: str | Path, step: int) -> None:
    """Every logger gets the completed run's summary (once its final metrics are logged); trackers' runs end here."""
    if not loggers:
        return
    summary = run_summary(cfg, Path(run_dir), step)
    for logger in loggers:
        as_tracker(logger).log_summary(summary)


def require_extra(module: str, extra: str) -> None:
    """Refuse a logger whose package is not installed, naming the extra that brings it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"logger={extra} needs the {module} package: pip install 'garbage-lit[{extra}]'") from None
