"""MLflow (``logger=mlflow``): one run per sweep job, its params, tags, pictures, tables and final model.

The tracking URI is checked before training: a server must answer, a local store must be a database
(``sqlite:///<folder>/mlflow.db``; MLflow 3 refuses a plain folder, ``file:``, unless ``MLFLOW_ALLOW_FILE_STORE=true``).
Metric and param names MLflow refuses (``test/per_class_acc/papier & karton``) are logged renamed
(:mod:`garbage_lit.loggers.keys`), and the run's ``metric_keys.csv`` says which is which.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from garbage_lit.errors import ConfigError
from garbage_lit.loggers.base import require_extra
from garbage_lit.loggers.keys import KEY_TABLE, MLFLOW, KeyMap
from garbage_lit.loggers.names import tracker_names
from garbage_lit.loggers.summary import RunSummary
from garbage_lit.records.folder import CHECKPOINT_DIR, MODEL_FILE
from garbage_lit.records.tables import write_csv

log = logging.getLogger(__name__)

UNSWEPT_EXPERIMENT = "garbage-lit"  # the MLflow experiment of runs outside a sweep


class SweepMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger, one run per job: named by what the job varies, in the experiment of its sweep.

    ``experiment_name`` / ``run_name`` None: the sweep folder (``garbage-lit`` outside a sweep) and what the job
    varies (the run folder's name when nothing varies). ``log_checkpoint``: the final model becomes the run's artifact
    ``checkpoints/model.ckpt``; ``registered_model_name``: and a new version of that registered model, tagged with the
    metric its epoch was chosen on. A tracking URI that cannot work stops the run before it trains.
    """

    def __init__(self, run_dir: str | Path, tracking_uri: str | None = None, experiment_name: str | None = None,
                 run_name: str | None = None, log_checkpoint: bool = True, registered_model_name: str | None = None,
                 **kwargs: Any) -> None:
        require_extra("mlflow", "mlflow")
        check_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"file:{Path(run_dir) / 'mlruns'}")
        sweep, run = tracker_names(run_dir)
        super().__init__(experiment_name=experiment_name or sweep or UNSWEPT_EXPERIMENT, run_name=run_name or run,
                         tracking_uri=tracking_uri, save_dir=str(Path(run_dir) / "mlruns"), **kwargs)
        self.log_checkpoint = log_checkpoint
        self.registered_model_name = registered_model_name
        self.keys = KeyMap(MLFLOW)

    def plan_keys(self, keys: Iterable[str]) -> None:
        self.keys.plan(keys)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """As Lightning's, with each name as MLflow accepts it (Lightning's would drop every character outside ASCII,
        so the per-class curves of classes named in Chinese would all become one name)."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self.experiment.log_batch(run_id=self.run_id, metrics=[
            Metric(self.keys(key), float(value), timestamp, step or 0) for key, value in metrics.items()])

    @rank_zero_only
    def log_png(self, tag: str, png: bytes, step: int) -> None:
        """The picture as the run's artifact ``<tag>.png``."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{Path(tag).name}.png"
            path.write_bytes(png)
            self.experiment.log_artifact(self.run_id, str(path), str(Path(tag).parent) if "/" in tag else None)

    @rank_zero_only
    def log_summary(self, summary: RunSummary) -> None:
        """Params, tags (``mlflow.source.git.commit`` too), artifacts: ``test/confusion_matrix.png``,
        ``test/per_class.csv``, ``metric_keys.csv`` (when a name was renamed), ``checkpoints/model.ckpt``; a registered
        model version if asked; the run ended."""
        from mlflow.entities import RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

        client, run_id = self.experiment, self.run_id
        self.log_hyperparams({self.keys(key): value for key, value in summary.params.items()})
        tags = {**summary.tags, MLFLOW_GIT_COMMIT: summary.tags["git_commit"]}
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
        for tag, png in summary.pictures.items():
            self.log_png(tag, png, summary.step)
        renamed = self.keys.renamed()
        tables = {**summary.tables, **({Path(KEY_TABLE).stem: renamed} if renamed else {})}
        with tempfile.TemporaryDirectory() as folder:
            for tag, rows in tables.items():
                folder_of_tag, _, name = tag.rpartition("/")
                write_csv(Path(folder) / f"{name}.csv", rows)
                client.log_artifact(run_id, str(Path(folder) / f"{name}.csv"), folder_of_tag or None)
        if summary.model is not None and self.log_checkpoint:
            client.log_artifact(run_id, str(summary.model), CHECKPOINT_DIR)
            if self.registered_model_name:
                _register(client, run_id, self.registered_model_name, summary.chosen)
        self.finalize("success")


def _register(client: Any, run_id: str, name: str, chosen: dict[str, str]) -> None:
    """A new version of registered model ``name``: the run's ``checkpoints/``, tagged with how it was chosen."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, f"runs:/{run_id}/{CHECKPOINT_DIR}", run_id=run_id, tags=chosen,
                                          description=f"{CHECKPOINT_DIR}/{MODEL_FILE}: the epoch chosen on "
                                                      f"{chosen['chosen_on']}")
    log.info("registered the final model as %s version %s (chosen on %s)", name, version.version, chosen["chosen_on"])


def check_tracking_uri(uri: str) -> None:
    """Stop before training when the tracking URI cannot work: nothing answers at an http(s) server (any HTTP answer
    will do), or a local folder store, which MLflow 3 refuses unless told otherwise."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri, timeout=10).close()
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(f"logger.mlflow.tracking_uri={uri}: no MLflow tracking server answers there "
                              f"({reason}). Start this machine's with scripts/mlflow_local_server.sh start, or point "
                              f"logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI) at your team's server, or at a "
                              f"local database: logger.mlflow.tracking_uri=sqlite:///<folder>/mlflow.db") from None
        return
    if "://" in uri and not uri.startswith("file:"):
        return  # a database (sqlite:///..., postgresql://...) or another store MLflow knows
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
        folder = uri.removeprefix("file://").removeprefix("file:")
        raise ConfigError(f"logger.mlflow.tracking_uri={uri}: MLflow 3 no longer writes runs into a plain folder. "
                          f"Use a local database instead: logger.mlflow.tracking_uri=sqlite:///{folder.rstrip('/')}"
                          f"/mlflow.db (mlflow ui --backend-store-uri the same URI shows it), or a server; or set "
                          f"MLFLOW_ALLOW_FILE_STORE=true to keep the folder store")
