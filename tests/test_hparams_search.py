"""hparams_search=optuna: a search on the validation split that persists, resumes, prunes and tests once at the end."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from garbage_lit.errors import ConfigError
from garbage_lit.records.folder import TEST_ACC, read_metrics
from garbage_lit.report.__main__ import main as report_main
from garbage_lit.search.space import parse_space
from garbage_lit.search.storage import check_driver
from garbage_lit.search.study import check_search
from garbage_lit.train import train

from helpers.data import make_folder_dataset
from helpers.sweeps import run_sweep

# Tiny: optim and lr only (random sampler, seed 0: both optimizers, and lr=-1, which fails validation, once).
TINY = ["hparams_search=optuna", "data.val_ratio=0.3", "epochs=2", "batch_size=4",
        "hparams_search.sampler._target_=optuna.samplers.RandomSampler", "~hparams_search.sampler.n_startup_trials",
        "hparams_search.pruner=null",
        "hparams_search.exclude=[lr,optim,optim.weight_decay,optim.momentum,batch_size,model.label_smoothing,epochs]",
        "optim=choice(sgd,adam)", "lr=choice(0.05,-1)"]


def _storage(sweep: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{sweep}/optuna.db")


def test_search_space_reads_hydra_sweep_syntax():
    space, fixed = parse_space({"lr": "tag(log, interval(1e-4, 1e-1))", "epochs": "range(5, 31, 5)",
                                "optim": "choice(sgd, adam)"},
                               ["epochs=7", "model.label_smoothing=interval(0, 0.2)", "data=folder"])
    assert space["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert space["optim"] == optuna.distributions.CategoricalDistribution(("sgd", "adam"))
    assert space["model.label_smoothing"] == optuna.distributions.FloatDistribution(0.0, 0.2)
    assert "epochs" not in space and fixed == ["epochs=7", "data=folder"]  # a plain value fixes a searched key
    assert parse_space({"epochs": "range(5, 31, 5)"}, [])[0]["epochs"] == optuna.distributions.IntDistribution(
        5, 30, step=5)


def test_search_refuses_to_start_without_a_validation_split(make_cfg):
    with pytest.raises(ConfigError, match=r"data\.val_ratio=0\.0.*data\.val_ratio=0\.1"):
        check_search(make_cfg("hparams_search=optuna"), "hparams_search")
    with pytest.raises(ConfigError, match="optimized_metric='test/acc'"):
        check_search(make_cfg("hparams_search=optuna", "data.val_ratio=0.2", "optimized_metric=test/acc"),
                     "hparams_search")
    check_search(make_cfg("hparams_search=optuna", "data.val_ratio=0.2"), "hparams_search")


def test_main_returns_the_validation_metric_never_the_test_one(make_cfg, folder_dataset, tmp_path, monkeypatch):
    """Honest sweeps: the value a sweeper sees is val/acc of the kept epoch, whatever the test split says."""
    from garbage_lit import train as train_module

    original = train_module._test_results
    monkeypatch.setattr(train_module, "_test_results", lambda *args: {**original(*args), TEST_ACC: -1.0})
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.3", "epochs=2",
                   output_dir=tmp_path / "with_val")
    final = train(cfg)
    rows = read_metrics(tmp_path / "with_val")["epochs"]
    assert final[TEST_ACC] == -1.0
    assert final["val/acc"] == next(r["val/acc"] for r in rows if r["epoch"] == final["epoch"])
    assert 0.0 <= final[cfg.optimized_metric] <= 1.0
    no_val = train(make_cfg("data=folder", f"data.root={folder_dataset}", output_dir=tmp_path / "no_val"))
    assert no_val.get("val/acc") is None  # main() returns None: nothing to optimize without a validation split


@pytest.mark.slow
def test_search_cli_refuses_without_validation_split(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    process = run_sweep(tmp_path / "sweep", data, "hparams_search=optuna", "hparams_search.n_trials=2")
    assert process.returncode != 0
    assert "data.val_ratio=0.0" in process.stderr and "set data.val_ratio=0.1" in process.stderr
    assert not (tmp_path / "sweep" / "0").exists()


@pytest.mark.slow
def test_tiny_search_end_to_end_failures_resume_and_final_test(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    process = run_sweep(sweep, data, *TINY, "hparams_search.n_trials=3")
    assert process.returncode == 0, process.stderr[-3000:]

    # A killed search leaves a trial running; the re-run marks it failed (not counted) and runs the rest.
    study = _storage(sweep)
    first = {t.number: (t.state, t.datetime_complete) for t in study.trials}
    study.ask()
    process = run_sweep(sweep, data, *TINY, "hparams_search.n_trials=4")
    assert process.returncode == 0, process.stderr[-3000:]
    study = _storage(sweep)
    trials = study.trials
    assert {n: (trials[n].state, trials[n].datetime_complete) for n in first} == first  # finished trials untouched
    assert trials[3].state == TrialState.FAIL and trials[3].user_attrs["interrupted"]
    assert len(trials) == 5 and trials[4].state != TrialState.RUNNING

    # lr=-1 fails config validation: that trial is marked failed and the study goes on.
    counted = [t for t in trials if not t.user_attrs.get("interrupted")]
    assert {t.params["lr"] for t in counted} == {0.05, -1} and {t.params["optim"] for t in counted} == {"sgd", "adam"}
    for t in counted:
        assert t.state == (TrialState.FAIL if t.params["lr"] == -1 else TrialState.COMPLETE)
        if t.params["lr"] == -1:
            assert "lr=-1 is not allowed" in t.user_attrs["error"]

    # The objective is val/acc of each trial's last epoch; trials never evaluated the test split.
    for t in (t for t in counted if t.state == TrialState.COMPLETE):
        metrics = read_metrics(t.user_attrs["folder"])
        assert t.value == metrics["final"]["val/acc"] == metrics["epochs"][-1]["val/acc"]
        assert not [k for row in metrics["epochs"] for k in row if k.startswith("test/")]
        assert not [k for k in metrics["final"] if k.startswith("test/")]
        assert not (Path(t.user_attrs["folder"]) / "checkpoints").exists()  # no checkpoints unless asked

    # The best parameters trained once more: the same val/acc (same seed, same split), tested once.
    summary = json.loads((sweep / "search.json").read_text())
    best = study.best_trial
    final = read_metrics(sweep / "final")
    assert summary["final"]["trial"] == best.number and summary["final"]["val/acc"] == best.value
    assert final["final"]["val/acc"] == best.value and 0.0 <= final["final"][TEST_ACC] <= 1.0
    assert summary["final"][TEST_ACC] == final["final"][TEST_ACC]
    assert not [k for row in final["epochs"] for k in row if k.startswith("test/")]  # test once, at the end

    with (sweep / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == [t.state.name.lower() for t in trials]
    assert {"trial", "val/acc", "optim", "lr", "seconds", "state"} <= set(rows[0])
    assert yaml.safe_load((sweep / "best_params.yaml").read_text())["params"] == best.params
    line = (sweep / "best_overrides.txt").read_text()
    assert f"optim={best.params['optim']}" in line and "hparams_search" not in line
    for name in ("optimization_history.png", "slice.png", "param_importances.png"):
        assert (sweep / name).stat().st_size > 1000

    assert report_main([str(sweep)]) == 0
    report = (sweep / "report.md").read_text()
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    assert f"{TEST_ACC} {final['final'][TEST_ACC]:.4f}" in report and f"{complete} complete" in report


@pytest.mark.slow
def test_pruned_trials_are_recorded_as_pruned(tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    process = run_sweep(sweep, data, "hparams_search=optuna", "data.val_ratio=0.3", "batch_size=4", "epochs=3",
                        "hparams_search.n_trials=3", "hparams_search.exclude=[batch_size,epochs]",
                        "hparams_search.pruner._target_=optuna.pruners.ThresholdPruner",
                        "~hparams_search.pruner.n_startup_trials", "~hparams_search.pruner.n_warmup_steps",
                        "+hparams_search.pruner.lower=1.01", "hparams_search.final.enabled=false")
    assert process.returncode == 0, process.stderr[-3000:]
    trials = _storage(sweep).trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3  # val/acc can never reach 1.01
    assert all(list(t.intermediate_values) == [0] for t in trials)  # stopped after the first epoch
    assert read_metrics(trials[0].user_attrs["folder"])["status"] == "pruned"


def test_a_study_database_without_its_driver_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(ConfigError) as error:
        check_driver("postgresql+psycopg://search:secret@db.example:5432/studies", "hparams_search.storage")
    message = str(error.value)
    assert "pip install 'garbage-lit[cluster]'" in message and "psycopg" in message
    assert "secret" not in message and "search:***@db.example" in message  # never print the password
    check_driver("sqlite:///optuna.db", "hparams_search.storage")  # built in: nothing to install
