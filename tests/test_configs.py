"""Every config file composes, and every object a training config describes is built from its ``_target_``."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from garbage_lit.config import CONFIG_DIR
from garbage_lit.models import GarbageClassifier
from garbage_lit.run.components import data_module

from helpers.data import make_folder_dataset, make_garbage_classify

COMMANDS = ("train", "evaluate", "predict", "export", "audit")
CLASSES = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]
# What an option needs beside it to build, as its own comment says (a backbone; an optimizer class).
NEEDS = {"model=timm": ["model.arch=resnet18"], "model=torchvision": ["model.arch=resnet18"],
         "model=classifier": ["model.arch=resnet18"], "optim=optimizer": ["optim.algorithm=torch.optim.RMSprop"]}


def options() -> list[str]:
    """``group=option`` for every config file of a group (Hydra's own launcher group left to the sweep tests)."""
    found = []
    for path in sorted(Path(CONFIG_DIR).rglob("*.yaml")):
        group, option = path.parent.relative_to(CONFIG_DIR).as_posix(), path.stem
        if group != "." and not group.startswith("hydra"):
            found.append(f"{'+' if group == 'data/groups' else ''}{group}={option}")
    return found


def test_every_config_file_is_found():
    files = {p for p in Path(CONFIG_DIR).rglob("*.yaml") if not p.parent.name.startswith("hydra")
             and p.parent.parent.name != "hydra"}
    assert len(options()) + len(COMMANDS) == len(files)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_config_composes(command):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=command)
    assert "output_dir" in cfg.paths and "threads" in cfg  # the run folder resolves at run time (Hydra sets it)


@pytest.mark.parametrize("option", options())
def test_every_training_option_builds_its_objects(option, tmp_path):
    root = {"data=folder": lambda: make_folder_dataset(tmp_path / "data"),
            "data=garbage_classify": lambda: make_garbage_classify(tmp_path / "data", [0, 1, 2, 3])}.get(option)
    root = root() if root else None
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=[
            option, *NEEDS.get(option, []), "model.weights=none", *([f"data.root={root}"] if root else []),
            f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves as in a run (the search's storage URL)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.cache.dir = str(tmp_path / "cache")

    assert data_module(cfg).hparams.batch_size == cfg.batch_size
    model = instantiate(cfg.model, _convert_="all", num_classes=len(CLASSES), class_names=CLASSES,
                        optimizer=instantiate(cfg.optim),
                        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None)
    assert isinstance(model, GarbageClassifier) and model.hparams.arch == cfg.model.arch
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, len(CLASSES))
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    assert all(isinstance(c, pl.Callback) for c in callbacks)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    assert all(isinstance(logger, pl.loggers.Logger) for logger in loggers)
    if cfg.trainer.get("accelerator") == "gpu" and not torch.cuda.is_available():
        return  # trainer=gpu composes; building it here is refused (tests/test_commands.py)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    assert trainer.max_epochs == cfg.epochs
