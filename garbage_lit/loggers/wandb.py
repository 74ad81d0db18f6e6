"""Weights & Biases (``logger=wandb``): one run per sweep job (offline by default), its config, pictures, tables and
final model; each run finished at the end of its job. Metric names W&B cannot sort or filter by (its names are ASCII
letters, digits and ``_`` in each ``/`` section) are logged renamed, and the run's ``metric_keys`` table says which
is which (:mod:`garbage_lit.loggers.keys`)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from garbage_lit.loggers.base import require_extra
from garbage_lit.loggers.keys import KEY_TABLE, WANDB, KeyMap
from garbage_lit.loggers.names import tracker_names
from garbage_lit.loggers.summary import RunSummary
from garbage_lit.records.folder import MODEL_FILE

log = logging.getLogger(__name__)

STEP_KEY = "trainer/global_step"  # Lightning's x-axis for everything logged to W&B


class SweepWandbLogger(WandbLogger):
    """Lightning's WandbLogger, one run per job: named by what the job varies, in the group of its sweep.

    ``name`` / ``group`` None: what the job varies (the run folder's name when nothing varies) and the sweep folder
    (no group outside a sweep). The run is finished at the end of its job, and with exit code 1 when the job fails,
    so the next job in the same process (a multirun, a search's trials) never logs into it.
    """

    def __init__(self, save_dir: str | Path, name: str | None = None, group: str | None = None,
                 log_checkpoint: bool = True, **kwargs: Any) -> None:
        require_extra("wandb", "wandb")
        import wandb

        if wandb.run is not None:  # an earlier job of this process stopped before its end: finish that run
            log.warning("finishing W&B run %s left open by an earlier job", wandb.run.name)
            wandb.finish(exit_code=1)
        sweep, run = tracker_names(save_dir)
        super().__init__(save_dir=str(save_dir), name=name or run, group=group or sweep, **kwargs)
        # Lightning always passes wandb.init `anonymous`, which W&B now warns has no effect; no public way to omit it.
        self._wandb_init.pop("anonymous", None)
        self.log_checkpoint = log_checkpoint
        self.keys = KeyMap(WANDB)
        self.keys.plan([STEP_KEY])

    def plan_keys(self, keys: Iterable[str]) -> None:
        self.keys.plan(keys)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({self.keys(key): value for key, value in metrics.items()}, step)

    @rank_zero_only
    def log_png(self, tag: str, png: bytes, step: int) -> None:
        """The picture as a W&B image under ``tag``."""
        import wandb
        from PIL import Image

        self.experiment.log({tag: wandb.Image(Image.open(io.BytesIO(png))), STEP_KEY: step})

    @rank_zero_only
    def log_summary(self, summary: RunSummary) -> None:
        """Config (params and tags), the pictures as images, the tables (and ``metric_keys`` when a name was renamed)
        as W&B Tables, the model as an artifact, then the run finished: the next job of a multirun in this process
        starts a run of its own."""
        import wandb

        run = self.experiment
        self.log_hyperparams(summary.params)
        run.config.update(summary.tags, allow_val_change=True)
        for tag, png in summary.pictures.items():
            self.log_png(tag, png, summary.step)
        renamed = self.keys.renamed()
        tables = {**summary.tables, **({Path(KEY_TABLE).stem: renamed} if renamed else {})}
        if tables:
            run.log({**{tag: wandb.Table(columns=list(rows[0]) if rows else [], data=[list(r.values()) for r in rows])
                        for tag, rows in tables.items()}, STEP_KEY: summary.step})
        if summary.model is not None and self.log_checkpoint:
            artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=summary.chosen)
            artifact.add_file(str(summary.model), name=MODEL_FILE, policy="immutable")  # final: referenced, not copied
            run.log_artifact(artifact)
        wandb.finish()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "failed":
            import wandb

            wandb.finish(exit_code=1)
