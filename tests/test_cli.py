"""The installed command line: a multirun sweep, TensorBoard runs with hparams, configs inside the wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from garbage_lit.report.__main__ import main as report_main
from garbage_lit.report.claims import NONE_TESTED
from garbage_lit.report.paper import NOT_IN_SWEEP

from helpers.data import REPO


def run_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "garbage_lit.train", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_sweep_runs_one_job_per_combination_and_tensorboard_lists_them(folder_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_train("-m", "optim=sgd,adam", "lr=0.003,0.01", "data=folder", f"data.root={folder_dataset}",
                     "debug=fast", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    combos = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        combos.add((metrics["config"]["optim"]["algorithm"], metrics["config"]["lr"]))
        assert (job / "split_manifest.csv").read_bytes() == (jobs[0] / "split_manifest.csv").read_bytes()
    assert combos == {(o, lr) for o in ("torch.optim.SGD", "torch.optim.Adam") for lr in (0.003, 0.01)}

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(sweep))
    multiplexer.Reload()
    runs = multiplexer.Runs()
    assert len(runs) == 4
    scalar_tags = set().union(*(tags["scalars"] for tags in runs.values()))
    for tag in ("train/loss", "train/acc", "train/recall", "test/loss", "test/acc", "test/recall",
                "lr-SGD/head", "test/per_class_acc/glass"):
        assert tag in scalar_tags, tag
    hparams = multiplexer.PluginRunToTagToContent("hparams")
    assert len(hparams) == 4
    for tags in hparams.values():
        assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(tags)
        assert b"test/acc" in tags["_hparams_/experiment"] and b"optimizer" in tags["_hparams_/session_start_info"]
    assert any(tags["images"] for tags in runs.values())  # the confusion-matrix figure

    # The design card's sweep is not the paper's grid: the report says so once, and what every job shared.
    assert report_main([str(sweep)]) == 0
    report = (sweep / "report.md").read_text()
    assert "None of the paper's configurations" in report and NOT_IN_SWEEP not in report
    assert NONE_TESTED in report
    assert "Every job: command line `data=folder " in report and "debug=fast`; epochs=1, data.image_size=32" in report


def test_config_is_found_from_any_directory(tmp_path):
    done = run_train("--cfg", "job", "--resolve", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trashnet_mini" in done.stdout and "arch: efficientnet_lite0" in done.stdout


def test_a_checkout_without_garbage_lit_conf_uses_its_own_conf_folder():
    """From a clone's root after a non-editable install, the checkout's garbage_lit/ (no conf/ in it) is imported."""
    hide_install = ("import importlib.machinery, sys; "
                    "sys.meta_path = [f for f in sys.meta_path if f is importlib.machinery.PathFinder or "
                    "'Editable' not in getattr(f, '__name__', type(f).__name__)]; "
                    "import importlib.util; from garbage_lit.config import CONFIG_DIR; "
                    "print(importlib.util.find_spec('garbage_lit.conf'), CONFIG_DIR)")
    done = subprocess.run([sys.executable, "-c", hide_install], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    installed_conf, config_dir = done.stdout.split()
    assert installed_conf == "None" and Path(config_dir) == REPO / "conf"


def test_unknown_option_names_the_choices(tmp_path):
    done = run_train("optim=rmsprop", "--cfg", "job", cwd=tmp_path)
    assert done.returncode != 0
    assert "optim" in done.stderr and "adam" in done.stderr and "sgd" in done.stderr


@pytest.mark.slow
def test_wheel_ships_every_package_configs_and_sample_data(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("garbage_lit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("garbage_lit/conf/train.yaml", "garbage_lit/conf/data/sample.yaml",
                 "garbage_lit/conf/model/googlenet.yaml", "garbage_lit/train.py",
                 "garbage_lit/report/paper_reference.yaml",
                 "garbage_lit/sample_data/trashnet_mini/LICENSE-TRASHNET.txt"):
        assert name in names, name
    packages = [init.relative_to(REPO).as_posix() for init in (REPO / "garbage_lit").rglob("__init__.py")]
    assert [p for p in packages if p not in names] == [], "add them to pyproject.toml's [tool.setuptools] packages"
    assert sum(n.startswith("garbage_lit/sample_data/trashnet_mini/glass/") for n in names) == 30
