"""MLflow, W&B and CSV loggers: one run per sweep job, with what the run folder records, read back as a person would.

The MLflow tests log to the tracking server that scripts/mlflow_local_server.sh starts (skipped without it, mandatory
with GARBAGE_LIT_REQUIRE_MLFLOW=1, as in CI); W&B runs offline, read back from the files `wandb sync` would upload.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import torch
from PIL import Image

from garbage_lit.errors import ConfigError
from garbage_lit.loggers.keys import WANDB, KeyMap
from garbage_lit.loggers.mlflow import SweepMLFlowLogger
from garbage_lit.loggers.wandb import SweepWandbLogger
from garbage_lit.models.loading import eval_transform, load_classifier
from garbage_lit.models.metrics import per_class_table

from helpers.browser import keep_screenshot, shown
from helpers.data import make_folder_dataset
from helpers.sweeps import run_sweep
from helpers.trackers import mlflow_server, wandb_offline_runs

EPOCHS = 2
CLASSES = ("glass", "金属", "paper")  # a class named in Chinese: its per-class curve keeps its name
JOBS = ("optim=sgd", "optim=adam")     # job 0, job 1: each tracker run is named by what its job varies
NOT_LOGGED_AS_IS = ("epoch", "seconds", "lr")  # metrics.json's own columns (trackers get the LR as lr-<optimizer>)
# The MLflow UI's comparison page: each table's rows (run details, parameters, tags), each cell's text.
TABLES_JS = "return Array.from(document.querySelectorAll('table')).map(t => Array.from(t.rows).map(" \
            "tr => Array.from(tr.cells).map(c => c.innerText.trim())))"


def job_metrics(sweep: Path, job: int) -> dict:
    return json.loads((sweep / str(job) / "metrics.json").read_text())


def expected_histories(metrics: dict) -> dict[str, list[float]]:
    """Each per-epoch metric's values, one per epoch, and the final test's value after them (test/acc, ...)."""
    keys = sorted({key for row in metrics["epochs"] for key in row} - set(NOT_LOGGED_AS_IS))
    tested = {key: value for key, value in metrics["final"].items() if key.startswith("test/")}
    return {key: [row[key] for row in metrics["epochs"] if key in row] + ([tested[key]] if key in tested else [])
            for key in keys}


def predictions(ckpt: Path, images: list[Path]) -> torch.Tensor:
    model = load_classifier(ckpt)
    transform = eval_transform(model)
    with torch.no_grad():
        return model(torch.stack([transform(Image.open(p).convert("RGB")) for p in images]))


@pytest.fixture(scope="module")
def mlflow_sweep(tmp_path_factory):
    """A 2-job sweep logged to the live tracking server, registering its models under a name of its own."""
    uri = mlflow_server()
    base = tmp_path_factory.mktemp("mlflow")
    data = make_folder_dataset(base / "data", CLASSES)
    sweep, model_name = base / "sweep", f"garbage-lit-test-{uuid.uuid4().hex[:8]}"
    done = run_sweep(sweep, data, "optim=sgd,adam", f"epochs={EPOCHS}", "data.val_ratio=0.2",
                     "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={uri}",
                     f"logger.mlflow.registered_model_name={model_name}")
    assert done.returncode == 0, done.stderr[-3000:]
    return SimpleNamespace(uri=uri, sweep=sweep, data=data, model_name=model_name)


@pytest.mark.slow
@pytest.mark.mlflow
def test_mlflow_gets_one_run_per_sweep_job_with_the_run_folders_record(mlflow_sweep, tmp_path):
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_sweep.uri)
    experiment = client.get_experiment_by_name(str(mlflow_sweep.sweep))  # the experiment is the sweep folder
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(JOBS)
    for job, name in enumerate(JOBS):
        metrics, run = job_metrics(mlflow_sweep.sweep, job), runs[name]
        run_id, params, tags = run.info.run_id, run.data.params, run.data.tags
        assert run.info.status == "FINISHED"
        # The flat resolved config, Hydra's group choices and the sweep's columns.
        assert params["optim"] == name.split("=")[1] and float(params["lr"]) == metrics["config"]["lr"]
        assert params["optim.algorithm"] == metrics["config"]["optim"]["algorithm"]
        assert params["data.val_ratio"] == "0.2" and params["model"] == "resnet18"
        assert not any(key.startswith("logger.") for key in params)  # where it logs is no hyperparameter
        # Per-epoch curves, one value per epoch (and the final test's after them), under metrics.json's names.
        histories = expected_histories(metrics)
        assert "test/per_class_acc/金属" in histories and "val/acc" in histories
        for key, expected in histories.items():
            logged = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
            assert [m.value for m in logged] == pytest.approx(expected), key
        assert len(client.get_metric_history(run_id, "train/loss")) == EPOCHS
        # Where the result came from: the split, the code, the libraries.
        assert tags["split_manifest_sha256"] == metrics["data"]["split_manifest_sha256"]
        assert tags["versions.torch"] == metrics["provenance"]["versions"]["torch"]
        assert tags["git_commit"] == tags["mlflow.source.git.commit"] == str(metrics["provenance"]["git_commit"])
        # The figure, the per-class table and the final model.
        files = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / name),
                                                         tracking_uri=mlflow_sweep.uri))
        assert (files / "test" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        class_names = metrics["data"]["class_names"]
        with (files / "test" / "per_class.csv").open(encoding="utf-8") as handle:
            table = list(csv.DictReader(handle))
        assert table == [{k: str(v) for k, v in row.items()}
                         for row in per_class_table(metrics["final"]["confusion_matrix"], class_names)]
        images = sorted(mlflow_sweep.data.glob("*/*.jpg"))[::5]
        assert torch.equal(predictions(files / "checkpoints" / "model.ckpt", images),
                           predictions(mlflow_sweep.sweep / str(job) / metrics["final"]["checkpoint"], images))
        # Registered, with the metric its epoch was chosen on.
        (version,) = client.search_model_versions(f"name='{mlflow_sweep.model_name}' and run_id='{run_id}'")
        chosen = metrics["epochs"][metrics["final"]["epoch"]]
        assert version.tags == {"chosen_on": "val/acc", "val/acc": str(chosen["val/acc"]),
                                "epoch": str(metrics["final"]["epoch"])}


@pytest.mark.slow
@pytest.mark.mlflow
@pytest.mark.browser
def test_a_person_compares_the_sweeps_runs_in_the_mlflow_ui(mlflow_sweep, browser, tmp_path):
    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By

    client = MlflowClient(mlflow_sweep.uri)
    experiment = client.get_experiment_by_name(str(mlflow_sweep.sweep))
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.run_name ASC"])  # adam, then sgd
    ids, experiments = json.dumps([r.info.run_id for r in runs]), json.dumps([experiment.experiment_id])
    browser.set_window_size(1600, 1500)
    browser.get(f"{mlflow_sweep.uri}/#/compare-runs?runs={quote(ids)}&experiments={quote(experiments)}")
    shown(browser, TABLES_JS, lambda tables: len(tables) >= 3, "the comparison's tables")
    for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):  # the assistant's side panel
        close.click()
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Parameters - Show diff only']").click()
    details, params, tags = shown(browser, TABLES_JS, lambda t: len(t) >= 3 and len(t[1]) < 10, "what differs")
    browser.execute_script("window.scrollTo(0, 0)")
    png = tmp_path / "mlflow_compare.png"
    browser.save_screenshot(str(png))
    keep_screenshot(png)  # docs/images/mlflow_compare.png, with GARBAGE_LIT_SCREENSHOTS=docs/images

    assert ["Run Name:", "optim=adam", "optim=sgd"] in details
    assert ["optim", "adam", "sgd"] in params and ["optimizer", "Adam", "SGD"] in params  # what the sweep varied
    assert not any(row[0] == "lr" for row in params)  # the same in both: not a difference
    manifest = job_metrics(mlflow_sweep.sweep, 0)["data"]["split_manifest_sha256"]
    assert ["split_manifest_sha256", manifest, manifest] in tags
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def wandb_and_csv_sweep(tmp_path_factory):
    """A 2-job sweep logged to W&B (offline) and CSV."""
    base = tmp_path_factory.mktemp("wandb")
    sweep = base / "sweep"
    done = run_sweep(sweep, make_folder_dataset(base / "data", CLASSES), "optim=sgd,adam", f"epochs={EPOCHS}",
                     "logger=[csv,wandb]", "logger.wandb.mode=offline")
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep


@pytest.mark.slow
def test_wandb_offline_sweep_leaves_one_finished_run_per_job(wandb_and_csv_sweep):
    sweep = wandb_and_csv_sweep
    runs = {run.name: run for run in wandb_offline_runs(sweep)}
    assert sorted(runs) == sorted(JOBS)  # not one run shared by the multirun's jobs
    for job, name in enumerate(JOBS):
        metrics, run = job_metrics(sweep, job), runs[name]
        assert run.exit_code == 0 and run.group == str(sweep)  # finished; grouped by the sweep folder
        assert list((sweep / str(job) / "wandb").glob("offline-run-*"))  # in the job's own folder
        assert run.config["optim"] == name.split("=")[1] and run.config["lr"] == metrics["config"]["lr"]
        assert run.config["split_manifest_sha256"] == metrics["data"]["split_manifest_sha256"]
        assert run.config["versions.torch"] == metrics["provenance"]["versions"]["torch"]
        histories = expected_histories(metrics)
        logged_as = KeyMap(WANDB)  # names W&B cannot sort by (金属) are logged renamed, as the run plans them
        logged_as.plan(sorted(histories))
        assert logged_as("test/per_class_acc/金属") != "test/per_class_acc/金属"
        for key, expected in histories.items():
            assert run.values(logged_as(key)) == pytest.approx(expected), key
        assert run.values("test/confusion_matrix/_type") == ["image-file"]
        assert run.values("test/per_class/nrows") == [len(CLASSES)]
        (model,) = [a for a in run.artifacts if a["type"] == "model"]
        assert model["files"] == ["model.ckpt"] and model["metadata"]["chosen_on"] == "last epoch"


@pytest.mark.slow
def test_csv_metrics_equal_metrics_json(wandb_and_csv_sweep):
    for job in range(len(JOBS)):
        folder, metrics = wandb_and_csv_sweep / str(job) / "csv", job_metrics(wandb_and_csv_sweep, job)
        class_names = metrics["data"]["class_names"]
        with (folder / "metrics.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        by_epoch: dict[int, dict[str, float]] = {}  # Lightning writes an epoch's train and eval metrics as two rows
        for row in rows:
            if row["epoch"]:
                by_epoch.setdefault(int(row["epoch"]), {}).update(
                    {key: float(value) for key, value in row.items() if value and key not in ("epoch", "step")})
        for epoch, recorded in enumerate(metrics["epochs"]):
            assert by_epoch[epoch] == pytest.approx({k: v for k, v in recorded.items() if k not in NOT_LOGGED_AS_IS})
        tested = {key: value for key, value in metrics["final"].items() if key.startswith("test/")}
        assert by_epoch[EPOCHS] == pytest.approx(tested)  # the final test, logged after the last epoch
        lr_column = next(key for key in rows[0] if key.startswith("lr-"))
        assert [float(r[lr_column]) for r in rows if r[lr_column]] == [row["lr"] for row in metrics["epochs"]]
        with (folder / "test_per_class.csv").open(encoding="utf-8") as handle:
            assert list(csv.DictReader(handle)) == [
                {k: str(v) for k, v in row.items()}
                for row in per_class_table(metrics["final"]["confusion_matrix"], class_names)]
        assert (folder / "test_confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loggers_combine_as_a_list_of_the_group_options(make_cfg):
    cfg = make_cfg("logger=[tensorboard,mlflow,wandb,csv]")
    assert list(cfg.logger) == ["tensorboard", "mlflow", "wandb", "csv"]
    assert cfg.logger.csv.save_dir == cfg.logger.wandb.save_dir == cfg.logger.mlflow.run_dir == cfg.paths.output_dir


@pytest.mark.parametrize(("logger", "module"), [(SweepMLFlowLogger, "mlflow"), (SweepWandbLogger, "wandb")])
def test_a_missing_tracker_package_is_named_with_its_extra(logger, module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ConfigError, match=rf"^logger={module} needs the {module} package: "
                                          rf"pip install 'garbage-lit\[{module}\]'$"):
        logger(tmp_path)


@pytest.mark.slow
def test_a_tracking_server_that_does_not_answer_stops_the_run_with_its_message(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "garbage_lit.train", "debug=fast", "data=folder",
                           f"data.root={data}", "logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GARBAGE_LIT_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "not a config key" not in done.stderr
    message = "logger.mlflow.tracking_uri=http://127.0.0.1:9: no MLflow tracking server answers there"
    assert any(line.startswith(message) and line.endswith("or at a local database: "
                                                          "logger.mlflow.tracking_uri=sqlite:///<folder>/mlflow.db")
               for line in done.stderr.splitlines())
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_a_failed_job_finishes_its_wandb_run_so_the_next_job_gets_its_own(tmp_path):
    import wandb

    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
    first = SweepWandbLogger(tmp_path / "first", mode="offline")
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.finalize("failed")  # what Lightning calls when fit or test raises
    assert wandb.run is None
    second = SweepWandbLogger(tmp_path / "second", mode="offline")
    second.log_metrics({"train/loss": 0.5}, step=0)
    assert second.experiment.id != first.experiment.id
    wandb.finish()
    wandb.teardown()  # the W&B service has written its files when it stops (not always when finish returns)
    (failed,), (finished,) = wandb_offline_runs(tmp_path / "first"), wandb_offline_runs(tmp_path / "second")
    assert (failed.exit_code, failed.name, failed.values("train/loss")) == (1, "first", [1.0])
    assert (finished.exit_code, finished.name, finished.values("train/loss")) == (0, "second", [0.5])
