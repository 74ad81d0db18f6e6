"""What every configured logger gets from a run beyond its per-epoch scalars, and the experiment trackers' loggers.

Lightning logs the per-epoch and final metrics (``<split>/<name>``) to every logger as the run goes. At the end of
a job :func:`log_run_summary` gives each logger the rest, as the run folder records it: hyperparameters, the test
confusion figure and per-class table and, for the experiment trackers (MLflow, W&B), the flat resolved config, the
split manifest's hash, the provenance and the final model. How each kind of logger stores these is said once, in
its branch below, so adding a logger is its config file (``conf/logger/<name>.yaml``), its branch here and its
pyproject extra.

MLflow and W&B runs read like TensorBoard's: one run per sweep job, named by what the job varies
(``optim=adam,lr=0.01``), grouped by the sweep folder (the MLflow experiment, the W&B group); each is finished at
the end of its job, failed or not, so the next job of a multirun gets a run of its own. Under DDP only rank 0 logs.
"""

from __future__ import annotations

import importlib
import io
import logging
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from garbage_lit.config import ConfigError
from garbage_lit.models.metrics import per_class_table
from garbage_lit.plots import confusion_figure
from garbage_lit.report.writers import write_csv
from garbage_lit.run.folder import CHECKPOINT_DIR, MODEL_FILE, TEST, metric_key, read_metrics
from garbage_lit.run.tensorboard import sweep_run_name

log = logging.getLogger(__name__)

# Shown when the config has them (momentum only with SGD, the backbone's lr ratio only when fine-tuning).
_OPTIONAL_HPARAMS = (("weight_decay", "optim.weight_decay"), ("momentum", "optim.momentum"),
                     ("label_smoothing", "model.label_smoothing"),
                     ("backbone_lr_ratio", "callbacks.backbone_finetuning.backbone_initial_ratio_lr"))
# Config sections a tracker's params leave out: where runs are logged or a search is stored, not how a model was
# trained (their URLs may hold credentials).
NOT_PARAMS = ("logger", "hparams_search")
UNSWEPT_EXPERIMENT = "garbage-lit"  # the MLflow experiment of runs outside a sweep


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


@dataclass
class RunSummary:
    """A finished run as its folder records it, in the shapes loggers take."""

    hparams: dict[str, Any]               # the columns a sweep is read by (model, optimizer, lr, ...)
    params: dict[str, Any]                # the flat resolved config (less the job's own paths), Hydra's group
                                          # choices (optim: adam) and hparams
    tags: dict[str, str]                  # split manifest hash, code and library versions, where it ran
    figures: dict[str, Figure]            # test/confusion_matrix
    tables: dict[str, list[dict[str, Any]]]  # test/per_class: support, precision, recall, F1 of each class
    model: Path | None                    # checkpoints/model.ckpt, what evaluate, predict and export take
    chosen: dict[str, str]                # how the kept epoch was chosen: chosen_on, that metric's value, epoch
    step: int


def run_summary(cfg: DictConfig, run_dir: Path, step: int) -> RunSummary:
    """Read the completed run in ``run_dir`` (its metrics.json) into a :class:`RunSummary`."""
    record = read_metrics(run_dir)
    final = record["final"]
    hparams = run_hparams(cfg, record["weights_source"])
    provenance = record["provenance"]
    tags = {"split_manifest_sha256": record["data"]["split_manifest_sha256"],
            "weights_source": record["weights_source"], "run_dir": str(run_dir.resolve()),
            # not the command line: a database password typed there would travel with it
            **{key: provenance[key] for key in ("git_commit", "git_dirty", "python", "host")},
            **{f"versions.{package}": v for package, v in provenance["versions"].items()}}
    class_names = record["data"]["class_names"]
    figures, tables = {}, {}
    if "confusion_matrix" in final:
        figures[metric_key(TEST, "confusion_matrix")] = confusion_figure(final["confusion_matrix"], class_names)
        tables[metric_key(TEST, "per_class")] = per_class_table(final["confusion_matrix"], class_names)
    chosen_on = final.get("chosen_on")
    kept = next((e for e in record.get("epochs", []) if e["epoch"] == final["epoch"]), {})
    chosen = {"chosen_on": chosen_on or "last epoch", "epoch": str(final["epoch"]),
              **({chosen_on: str(kept.get(chosen_on))} if chosen_on else {})}
    return RunSummary(hparams=hparams, params=_tracker_params(cfg, run_dir, hparams),
                      tags={k: str(v) for k, v in tags.items()}, figures=figures, tables=tables, chosen=chosen,
                      model=run_dir / final["checkpoint"] if final.get("checkpoint") else None, step=step)


@rank_zero_only
def log_run_summary(loggers: list[Logger], cfg: DictConfig, run_dir: str | Path, step: int) -> None:
    """Every logger gets the completed run's summary (once its final metrics are logged); trackers' runs end here."""
    if not loggers:
        return
    summary = run_summary(cfg, Path(run_dir), step)
    for logger in loggers:
        if isinstance(logger, SweepMLFlowLogger):
            _to_mlflow(logger, summary)
        elif isinstance(logger, SweepWandbLogger):
            _to_wandb(logger, summary)
        elif isinstance(logger, TensorBoardLogger):
            _to_tensorboard(logger, summary)
        else:
            _to_folder(logger, summary)


def log_figure(logger: Logger, tag: str, figure: Figure, step: int) -> None:
    """Store ``figure`` under ``tag`` the way ``logger`` keeps pictures (:func:`log_png`)."""
    log_png(logger, tag, figure_png(figure), step)


def log_png(logger: Logger, tag: str, png: bytes, step: int) -> None:
    """Store a PNG picture under ``tag`` the way ``logger`` keeps pictures: TensorBoard's images, an MLflow artifact
    ``<tag>.png``, a W&B image, else a file in the logger's folder (when it has one). Drawn once, stored as drawn."""
    from PIL import Image

    if isinstance(logger, SweepMLFlowLogger):
        logger.experiment.log_image(logger.run_id, Image.open(io.BytesIO(png)), artifact_file=f"{tag}.png")
    elif isinstance(logger, SweepWandbLogger):
        import wandb

        logger.experiment.log({tag: wandb.Image(Image.open(io.BytesIO(png))), "trainer/global_step": step})
    elif isinstance(logger, TensorBoardLogger):
        picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        logger.experiment.add_image(tag, picture, global_step=step, dataformats="HWC")
    elif getattr(logger, "log_dir", None) is not None:
        Path(logger.log_dir).mkdir(parents=True, exist_ok=True)
        (Path(logger.log_dir) / f"{tag.replace('/', '_')}.png").write_bytes(png)


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """``figure`` drawn once, as PNG bytes (for a file and every logger alike)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _to_tensorboard(logger: TensorBoardLogger, summary: RunSummary) -> None:
    logger.log_hyperparams(summary.hparams)  # SweepTensorBoardLogger: the HParams table's columns
    for tag, figure in summary.figures.items():
        log_figure(logger, tag, figure, summary.step)
    logger.save()


def _to_folder(logger: Logger, summary: RunSummary) -> None:
    """CSV and any other logger: the hyperparameters, and figures and tables as files in its folder when it has one."""
    logger.log_hyperparams(summary.hparams)
    folder = getattr(logger, "log_dir", None)
    for tag, figure in summary.figures.items():
        log_figure(logger, tag, figure, summary.step)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for tag, rows in summary.tables.items():
            write_csv(Path(folder) / f"{tag.replace('/', '_')}.csv", rows)
    logger.save()


def _to_mlflow(logger: SweepMLFlowLogger, summary: RunSummary) -> None:
    """Params, tags (``mlflow.source.git.commit`` too), artifacts: ``test/confusion_matrix.png``,
    ``test/per_class.csv``, ``checkpoints/model.ckpt``; a registered model version if asked; the run ended."""
    from mlflow.entities import RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    client, run_id = logger.experiment, logger.run_id
    logger.log_hyperparams(summary.params)
    tags = {**summary.tags, MLFLOW_GIT_COMMIT: summary.tags["git_commit"]}
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    for tag, figure in summary.figures.items():
        log_figure(logger, tag, figure, summary.step)
    with tempfile.TemporaryDirectory() as folder:
        for tag, rows in summary.tables.items():
            folder_of_tag, _, name = tag.rpartition("/")
            write_csv(Path(folder) / f"{name}.csv", rows)
            client.log_artifact(run_id, str(Path(folder) / f"{name}.csv"), folder_of_tag or None)
    if summary.model is not None and logger.log_checkpoint:
        client.log_artifact(run_id, str(summary.model), CHECKPOINT_DIR)
        if logger.registered_model_name:
            _register(client, run_id, logger.registered_model_name, summary.chosen)
    logger.finalize("success")


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


def _to_wandb(logger: SweepWandbLogger, summary: RunSummary) -> None:
    """Config (params and tags), the figure as an image, the table as a W&B Table, the model as an artifact, then
    the run finished: the next job of a multirun in this process starts a run of its own."""
    import wandb

    run = logger.experiment
    logger.log_hyperparams(summary.params)
    run.config.update(summary.tags, allow_val_change=True)
    for tag, figure in summary.figures.items():
        log_figure(logger, tag, figure, summary.step)
    tables = {tag: wandb.Table(columns=list(rows[0]) if rows else [], data=[list(r.values()) for r in rows])
              for tag, rows in summary.tables.items()}
    if tables:
        run.log({**tables, "trainer/global_step": summary.step})
    if summary.model is not None and logger.log_checkpoint:
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=summary.chosen)
        artifact.add_file(str(summary.model), name=MODEL_FILE, policy="immutable")  # final: referenced, not copied
        run.log_artifact(artifact)
    wandb.finish()


class SweepMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger, one run per job: named by what the job varies, in the experiment of its sweep.

    ``experiment_name`` / ``run_name`` None: the sweep folder (``garbage-lit`` outside a sweep) and what the job
    varies (the run folder's name when nothing varies). ``log_checkpoint``: the final model becomes the run's artifact
    ``checkpoints/model.ckpt``; ``registered_model_name``: and a new version of that registered model, tagged with the
    metric its epoch was chosen on. A tracking server that does not answer stops the run before it trains.
    """

    def __init__(self, run_dir: str | Path, tracking_uri: str | None = None, experiment_name: str | None = None,
                 run_name: str | None = None, log_checkpoint: bool = True, registered_model_name: str | None = None,
                 **kwargs: Any) -> None:
        _require_extra("mlflow", "mlflow")
        if tracking_uri:
            _check_server_answers(tracking_uri)
        sweep, run = tracker_names(run_dir)
        super().__init__(experiment_name=experiment_name or sweep or UNSWEPT_EXPERIMENT, run_name=run_name or run,
                         tracking_uri=tracking_uri, save_dir=str(Path(run_dir) / "mlruns"), **kwargs)
        self.log_checkpoint = log_checkpoint
        self.registered_model_name = registered_model_name

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """As Lightning's, but with the names MLflow accepts kept whole. Lightning's drops every character outside
        ASCII, so the per-class curves of classes named in Chinese (``test/per_class_acc/其他垃圾/烟蒂``) would all
        become one name."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self.experiment.log_batch(run_id=self.run_id, metrics=[Metric(key, float(value), timestamp, step or 0)
                                                               for key, value in metrics.items()])


class SweepWandbLogger(WandbLogger):
    """Lightning's WandbLogger, one run per job: named by what the job varies, in the group of its sweep.

    ``name`` / ``group`` None: what the job varies (the run folder's name when nothing varies) and the sweep folder
    (no group outside a sweep). The run is finished at the end of its job, and with exit code 1 when the job fails,
    so the next job in the same process (a multirun, a search's trials) never logs into it.
    """

    def __init__(self, save_dir: str | Path, name: str | None = None, group: str | None = None,
                 log_checkpoint: bool = True, **kwargs: Any) -> None:
        _require_extra("wandb", "wandb")
        import wandb

        if wandb.run is not None:  # an earlier job of this process stopped before its end: finish that run
            log.warning("finishing W&B run %s left open by an earlier job", wandb.run.name)
            wandb.finish(exit_code=1)
        sweep, run = tracker_names(save_dir)
        super().__init__(save_dir=str(save_dir), name=name or run, group=group or sweep, **kwargs)
        # Lightning always passes wandb.init `anonymous`, which W&B now warns has no effect; no public way to omit it.
        self._wandb_init.pop("anonymous", None)
        self.log_checkpoint = log_checkpoint

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "failed":
            import wandb

            wandb.finish(exit_code=1)


def tracker_names(run_dir: str | Path) -> tuple[str | None, str]:
    """The sweep folder (None outside a multirun) and the job's run name: what it varies, else its folder's name."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return (HydraConfig.get().sweep.dir if multirun else None), sweep_run_name() or Path(run_dir).name


def _require_extra(module: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"logger={extra} needs the {module} package: pip install 'garbage-lit[{extra}]'") from None


def _check_server_answers(uri: str) -> None:
    """Stop before training when nothing answers at an http(s) tracking URI (any HTTP answer will do)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri, timeout=10).close()
    except urllib.error.HTTPError:
        return
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"logger.mlflow.tracking_uri={uri}: no MLflow tracking server answers there ({reason}). "
                          f"Start this machine's with scripts/mlflow_local_server.sh start, or point "
                          f"logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI) at your team's server") from None


def _tracker_params(cfg: DictConfig, run_dir: Path, hparams: dict[str, Any]) -> dict[str, Any]:
    """The flat resolved config, with Hydra's group choices and ``hparams``; less NOT_PARAMS and the values inside
    the job's own folder (where it writes: they differ between any two jobs and would hide what a sweep varied)."""
    own = (str(run_dir), str(run_dir.resolve()))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = _flat({key: value for key, value in resolved.items() if key not in NOT_PARAMS})
    return {**{key: value for key, value in flat.items() if not (isinstance(value, str) and value.startswith(own))},
            **_group_choices(), **hparams}


def _group_choices() -> dict[str, Any]:
    """Hydra's choice in each config group (``optim: adam``, ``model: resnet18``); empty outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return {group: choice for group, choice in HydraConfig.get().runtime.choices.items()
            if group != "hydra" and not group.startswith("hydra/") and group not in NOT_PARAMS}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.01}}`` -> ``{"optim.lr": 0.01}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
