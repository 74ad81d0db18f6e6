"""Config mistakes stop the run before any training, naming the key and what it allows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException

from garbage_lit.config import CONFIG_DIR, unknown_key_hint
from garbage_lit.errors import ConfigError, DataError
from garbage_lit.train import train


def test_unknown_group_value_lists_the_options():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        with pytest.raises(MissingConfigException) as error:
            compose(config_name="train", overrides=["model=resnet19"])
    assert "Available options in 'model'" in str(error.value)
    assert {"resnet18", "googlenet", "efficientnet_lite0"} <= set(error.value.options)


def test_misspelt_key_on_the_command_line_names_the_keys_that_exist(tmp_path):
    result = subprocess.run([sys.executable, "-m", "garbage_lit.train", "epochs=1", "lrr=0.1"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Key 'lrr' is not in struct" in result.stderr
    assert "did you mean 'lr'?" in result.stderr
    assert "Keys under the top level: batch_size, cache, callbacks, ckpt_path, data, epochs" in result.stderr
    assert not (tmp_path / "outputs").exists()  # stopped before a run folder was made


def test_misspelt_nested_key_hint():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        with pytest.raises(ConfigCompositionException):
            compose(config_name="train", overrides=["optim.momentun=0.5"])
    hint = unknown_key_hint(["optim=adam", "optim.momentum=0.5"])
    assert hint is not None and "'optim.momentum' is not a config key" in hint
    assert "Keys under optim: _target_, algorithm, layer_decay, lr, norm_bias_decay, weight_decay" in hint
    assert unknown_key_hint(["model=resnet19"]) is None  # Hydra's own message already lists the options
    assert unknown_key_hint(["data=folder", "data.root=/photos", "lr=abc"]) is None  # a ??? key exists too


@pytest.mark.parametrize("override, message", [
    ("lr=-0.1", "lr=-0.1 is not allowed: lr must be a number > 0"),
    ("batch_size=-4", "batch_size=-4 is not allowed: batch_size must be an integer >= 1"),
    ("batch_size=0", "batch_size=0 is not allowed"),
    ("data.test_ratio=0",
     "data.test_ratio=0 is not allowed: data.test_ratio must be a number strictly between 0 and 1"),
    ("data.test_ratio=1.5", "data.test_ratio=1.5 is not allowed"),
    ("epochs=0", "epochs=0 is not allowed: epochs must be an integer >= 1"),
    ("data.groups=3", "data.groups=3 is not allowed: data.groups must be a YAML"),
])
def test_bad_values_stop_before_training(make_cfg, folder_dataset, tmp_path, override, message):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", override)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_training_set_stops_before_training(make_cfg, folder_dataset, tmp_path):
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "batch_size=64")
    with pytest.raises(DataError, match=r"batch_size=64 is larger than the training set \(24 images\); "
                                        r"set batch_size between 1 and 24"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()


def _train_cli(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "garbage_lit.train", "debug=fast", *args,
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache"), **env})


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [
    ("lr=abc", "lr='abc' is not allowed: lr must be a number > 0, e.g. lr=0.003"),
    ("batch_size=0", "batch_size=0 is not allowed: batch_size must be an integer >= 1, e.g. batch_size=32"),
    ("epochs=-1", "epochs=-1 is not allowed: epochs must be an integer >= 1, e.g. epochs=10"),
    ("data.root={tmp_path}/nowhere", "dataset root {tmp_path}/nowhere does not exist or is not a folder: set "
                                     "data.root to the folder holding the 'folder' layout"),
])
def test_a_bad_value_on_the_command_line_prints_its_message_without_a_traceback(tmp_path, override, message):
    result = _train_cli(tmp_path, "data=folder", f"data.root={tmp_path}", override.format(tmp_path=tmp_path))
    assert result.returncode == 1
    assert message.format(tmp_path=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    failure_log = (tmp_path / "run" / "failure.log").read_text()  # the traceback is kept in the run folder
    assert failure_log.startswith("Traceback") and message.format(tmp_path=tmp_path) in failure_log
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and message.format(tmp_path=tmp_path) in metrics["error"]


@pytest.mark.slow
def test_hydra_full_error_prints_the_traceback_of_a_bad_value(tmp_path):
    result = _train_cli(tmp_path, "epochs=-1", HYDRA_FULL_ERROR="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "garbage_lit.errors.ConfigError: epochs=-1 is not allowed" in result.stderr
