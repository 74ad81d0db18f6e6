"""What every configured logger gets from a run beyond its per-epoch scalars: hyperparameters and figures.

Hyperparameters go through Lightning's ``Logger.log_hyperparams``; figures through :func:`log_figure`, the
one place that knows how each kind of logger stores a picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

# Shown when the config has them (momentum only with SGD, the backbone's lr ratio only when fine-tuning).
_OPTIONAL_HPARAMS = (("weight_decay", "optim.weight_decay"), ("momentum", "optim.momentum"),
                     ("label_smoothing", "model.label_smoothing"),
                     ("backbone_lr_ratio", "callbacks.backbone_finetuning.backbone_initial_ratio_lr"))


def run_hparams(cfg: DictConfig, weights_source: str) -> dict[str, Any]:
    """The flat hyperparameters that tell the jobs of a sweep apart."""
    return {
        "model": cfg.model.arch,
        "weights": weights_source,
        "freeze_backbone": cfg.model.freeze_backbone,
        "optimizer": cfg.optim._target_.rsplit(".", 1)[-1],
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        **{name: OmegaConf.select(cfg, key) for name, key in _OPTIONAL_HPARAMS
           if OmegaConf.select(cfg, key) is not None},
        "seed": cfg.seed,
        "scheduler": cfg.scheduler._target_.rsplit(".", 1)[-1] if cfg.get("scheduler") else "none",
        "data": f"{cfg.data.layout}:{Path(str(cfg.data.root)).name}",
    }


def log_figure(logger: Logger, tag: str, figure: Figure, step: int) -> None:
    """Store ``figure`` under ``tag`` the way ``logger`` keeps pictures (a PNG in its folder otherwise)."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_figure(tag, figure, global_step=step)
    elif logger.log_dir is not None:
        path = Path(logger.log_dir) / f"{tag.replace('/', '_')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120, bbox_inches="tight")


@rank_zero_only
def log_run_summary(loggers: list[Logger], hparams: dict[str, Any], figures: dict[str, Figure], step: int) -> None:
    """Every logger gets the run's hyperparameters and figures, once its final metrics are logged."""
    for logger in loggers:
        logger.log_hyperparams(hparams)
        for tag, figure in figures.items():
            log_figure(logger, tag, figure, step)
        logger.save()
