"""TensorBoard that reads well in a sweep: runs named by what they vary, the swept columns shown first.

TensorBoard names a run by its folder, and its HParams table shows the first five hyperparameters of the
experiment sorted by (``differs`` first, then name) and hides the rest behind check boxes. Left to itself
(an experiment without ``differs``) it shows batch_size, data, epochs, freeze_backbone and lr, and not the
optimizer or model a sweep compares. So each job

- logs into ``<job folder>/tensorboard/<overrides that vary across the sweep>`` (``optim=adam,lr=0.01``);
  a single run keeps ``tensorboard/`` itself;
- writes its own HParams experiment in which model, optimizer, lr, batch_size and every swept knob are
  marked ``differs``, so they are the columns a person sees without clicking.
"""

from __future__ import annotations

import fnmatch
import io
import time
from argparse import Namespace
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard.writer import FileWriter

from garbage_lit.loggers.names import sweep_run_name, varied_overrides
from garbage_lit.loggers.summary import RunSummary

# Columns every sweep is read by; with the swept knobs they come first in the HParams table.
ALWAYS_SHOWN = ("model", "optimizer", "lr", "batch_size")
# Override keys (as typed on the command line or in hydra.sweeper.params) -> the hparam that shows them.
HPARAM_OF_OVERRIDE = {
    "model": "model", "model.arch": "model", "model.zoo": "model",
    "optim": "optimizer", "optim.algorithm": "optimizer",
    "lr": "lr", "optim.lr": "lr", "batch_size": "batch_size", "epochs": "epochs", "seed": "seed",
    "scheduler": "scheduler", "model.freeze_backbone": "freeze_backbone", "model.weights": "weights",
    "data": "data", "data.root": "data",
}


class SweepTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger, with the run named by what the job varies and HParams columns that read well.

    ``log_hyperparams`` writes an HParams experiment whose swept and ALWAYS_SHOWN hyperparameters are the table's
    default columns and whose metrics are the scalar tags this logger was given that match ``hparams_metrics``
    (glob patterns, e.g. ``test/bin_*``). HParams shows a tag's last value, so no metric is logged again at
    step 0 in the middle of the per-epoch curves; call it once the run's final metrics are logged.
    """

    def __init__(self, save_dir: str | Path, name: str = "tensorboard", version: str | None = None,
                 hparams_metrics: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(save_dir, name=name, version=sweep_run_name() if version is None else version,
                         default_hp_metric=False, **kwargs)
        self.hparams_metrics = [p for p in hparams_metrics if p]
        self.logged_tags: set[str] = set()

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.logged_tags.update(metrics)
        super().log_metrics(metrics, step)

    @rank_zero_only  # as Lightning's: the other DDP ranks have no event writer
    def log_hyperparams(self, params: dict[str, Any] | Namespace, metrics: dict[str, Any] | None = None) -> None:
        varied = varied_overrides()
        hparams = dict(vars(params) if isinstance(params, Namespace) else params)
        for key, value in varied.items():
            hparams.setdefault(HPARAM_OF_OVERRIDE.get(key.lstrip("+~"), key.lstrip("+~")), value)
        shown = set(ALWAYS_SHOWN) | {HPARAM_OF_OVERRIDE.get(k.lstrip("+~"), k.lstrip("+~")) for k in varied}
        hparams = {name: _plain(value) for name, value in hparams.items()}
        super().log_hyperparams(hparams)  # hparams.yaml beside the events; no metrics, so no experiment of its own

        columns = sorted(t for t in self.logged_tags if any(fnmatch.fnmatchcase(t, p) for p in self.hparams_metrics))
        infos = [api_pb2.HParamInfo(name=name, type=_data_type(value), differs=name in shown)
                 for name, value in hparams.items()]
        experiment = api_pb2.Experiment(
            hparam_infos=infos, metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in columns])
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in hparams.items():
            field = {api_pb2.DATA_TYPE_BOOL: "bool_value", api_pb2.DATA_TYPE_FLOAT64: "number_value"}.get(
                _data_type(value), "string_value")
            setattr(start.hparams[name], field, value)
        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
        data = plugin_data_pb2.HParamsPluginData
        writer = FileWriter(self.log_dir)  # its own events file: Lightning may have closed the scalars' writer
        for tag, plugin_data in ((metadata.EXPERIMENT_TAG, data(experiment=experiment)),
                                 (metadata.SESSION_START_INFO_TAG, data(session_start_info=start)),
                                 (metadata.SESSION_END_INFO_TAG, data(session_end_info=end))):
            writer.add_summary(_summary(tag, plugin_data))
        writer.close()

    def plan_keys(self, keys: Iterable[str]) -> None:
        """Nothing to plan: TensorBoard takes any tag."""

    @rank_zero_only
    def log_png(self, tag: str, png: bytes, step: int) -> None:
        """The picture under Images, its PNG bytes as drawn (TensorBoard's ``add_image`` would decode and encode it
        again: a third of a cached sweep job's time beyond its steps)."""
        header = Image.open(io.BytesIO(png))  # reads the header only
        width, height = header.size
        image = summary_pb2.Summary.Image(height=height, width=width, colorspace=len(header.getbands()),
                                          encoded_image_string=png)
        # torch's SummaryWriter has no public call for a ready summary; its own add_* methods write through this one.
        self.experiment._get_file_writer().add_summary(
            summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)]), global_step=step)

    @rank_zero_only
    def log_summary(self, summary: RunSummary) -> None:
        """The HParams table's row (its columns: see :meth:`log_hyperparams`) and the confusion matrix picture."""
        self.log_hyperparams(summary.hparams)
        for tag, png in summary.pictures.items():
            self.log_png(tag, png, summary.step)
        self.save()


def _summary(tag: str, plugin_data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    """One hparams-plugin summary (what tensorboard.plugins.hparams.summary builds, without TensorFlow)."""
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(plugin_data))])


def _plain(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _data_type(value: Any) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, (int, float)):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING
