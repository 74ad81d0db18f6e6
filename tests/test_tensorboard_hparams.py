"""Sweep jobs name their TensorBoard run by what they vary and put the swept columns first in HParams."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import backend_context, metadata

from garbage_lit.config import CONFIG_DIR
from garbage_lit.loggers.names import sweep_run_name
from garbage_lit.loggers.tensorboard import SweepTensorBoardLogger

SWEEP = ["optim=sgd,adam", "lr=0.003,0.01", "data.image_size=32,64", "epochs=1"]  # as typed after -m
JOB = ["optim=adam", "lr=0.01", "data.image_size=64", "epochs=1"]                  # what job 7 of it got
HPARAMS = {"model": "resnet18", "weights": "none", "freeze_backbone": True, "optimizer": "Adam", "lr": 0.01,
           "batch_size": 4, "epochs": 1, "seed": 0, "scheduler": "none", "data": "folder:data"}


def in_sweep_job(sweep_dir: Path) -> None:
    """Make this process look like job 7 of ``-m <SWEEP>``: Hydra's config and the sweep's multirun.yaml."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=JOB, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(sweep_dir)
        sweep_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(cfg.hydra)})
        sweep_cfg.hydra.overrides.task = SWEEP
    sweep_dir.mkdir(parents=True)
    OmegaConf.save(sweep_cfg, sweep_dir / "multirun.yaml")
    HydraConfig.instance().set_config(cfg)


def test_sweep_job_run_is_named_by_the_overrides_that_vary(tmp_path):
    assert sweep_run_name() == ""  # outside Hydra: a single run logs into tensorboard/ itself
    in_sweep_job(tmp_path / "sweep")
    try:
        assert sweep_run_name() == "optim=adam,lr=0.01,data.image_size=64"  # epochs=1 is the same in every job
    finally:
        HydraConfig.instance().cfg = None


def test_hparams_table_shows_model_optimizer_lr_batch_size_and_swept_knobs_first(tmp_path):
    in_sweep_job(tmp_path / "sweep")
    try:
        logger = SweepTensorBoardLogger(tmp_path / "job", hparams_metrics=["test/acc", "test/rec*", "val/acc"])
        logger.log_metrics({"test/acc": 0.75, "test/recall": 0.5, "test/loss": 1.0}, step=7)  # as trainer.test logs
        logger.finalize("success")  # as Lightning does after the test, before the run logs its hyperparameters
        logger.log_hyperparams(HPARAMS)
    finally:
        HydraConfig.instance().cfg = None

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "job"))
    multiplexer.Reload()
    (run, tags), = multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME).items()
    assert run == "tensorboard/optim=adam,lr=0.01,data.image_size=64"
    experiment = metadata.parse_experiment_plugin_data(tags[metadata.EXPERIMENT_TAG])
    backend_context._sort_and_reduce_to_hparams_limit(experiment)  # what TensorBoard's HParams plugin serves
    columns = [info.name for info in experiment.hparam_infos]
    # The HParams table ticks the first five: exactly the swept knobs and the four every sweep is read by.
    assert columns[:5] == ["batch_size", "data.image_size", "lr", "model", "optimizer"]
    assert set(columns[5:]) == {"weights", "freeze_backbone", "epochs", "seed", "scheduler", "data"}
    assert [m.name.tag for m in experiment.metric_infos] == ["test/acc", "test/recall"]  # the logged tags matching
    start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["optimizer"].string_value == "Adam" and start.hparams["lr"].number_value == 0.01
    assert start.hparams["data.image_size"].string_value == "64"
    assert start.hparams["freeze_backbone"].bool_value is True
    scalars = multiplexer.Scalars(run, "test/acc")
    assert [(s.step, s.value) for s in scalars] == [(7, 0.75)]  # the logged value, not repeated at step 0
