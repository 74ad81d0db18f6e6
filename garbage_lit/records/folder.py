"""The run folder: the contract between train, resume, report, evaluate and the tests.

A job's folder holds ``metrics.json`` (status, per-epoch history, final test metrics, provenance),
``split_manifest.csv``, ``failure.log`` when it failed or was interrupted, ``data_problems.csv`` /
``duplicates.csv`` when the data had any, ``test_predictions.csv`` and the final test's pictures (``gallery.png``,
``reliability.png``, ``coverage.png`` / ``.csv``), ``checkpoints/``, ``tensorboard/``, Hydra's ``.hydra/`` and,
once it was resumed after a failure, ``attempts/`` (the earlier attempts' failure logs). Paths it records about
itself are relative to it, so the folder can be moved or copied and resumed there. A sweep's folder holds
``multirun.yaml`` and, after a search, ``search.json`` and ``trials.csv``. Every other module reads and writes
run and sweep folders through the names and functions here.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from garbage_lit.records.atomic import atomic_write, write_json_atomic

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
MANIFEST_FILE = "split_manifest.csv"
FAILURE_FILE = "failure.log"
PROBLEMS_FILE = "data_problems.csv"
DUPLICATES_FILE = "duplicates.csv"
POINTER_FILE = "resumed_in.txt"      # left in a launch's own folder when it continued another run
PREDICTIONS_FILE = "test_predictions.csv"  # the final test of the chosen checkpoint, one row per test image
PREDICTION_COLUMNS = ("file", "label", "predicted", "probability")  # file relative to the data root
CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.ckpt"           # in CHECKPOINT_DIR: the kept model, whole: what evaluate / predict / export take
REQUEUE_CHECKPOINT = "requeue.ckpt"  # in CHECKPOINT_DIR: saved at SLURM's warning signal, removed when training ends
MULTIRUN_FILE = "multirun.yaml"     # a sweep folder's: the grid the sweep promised
SEARCH_FILE = "search.json"         # a search's sweep folder: the study, its cost, best trial and final run
TRIALS_FILE = "trials.csv"          # ... and one row per trial
ATTEMPTS_DIR = "attempts"           # failure.log of each earlier attempt of a resumed run: attempts/failure-N.log
# What the final test (and evaluate) draw: garbage_lit/insight
GALLERY_FILE = "gallery.png"          # the most confident mistakes and the least confident correct answers
RELIABILITY_FILE = "reliability.png"  # the reliability diagram, with the expected calibration error
COVERAGE_FILE = "coverage.png"        # accuracy against coverage as the "unsure" threshold rises
COVERAGE_TABLE = "coverage.csv"       # the same, one row per threshold
# What garbage_lit.audit writes
AUDIT_FILE = "audit.json"
LABEL_ISSUES_FILE = "label_issues.csv"
LABEL_ISSUES_GALLERY = "label_issues.png"
EXCLUDE_FILE = "exclude.txt"          # the suspects as a data.exclude list

ATTEMPTS = "attempts"  # metrics.json key: a SLURM job's attempts (the first, then each requeue), run/requeue.py

# ``status`` in metrics.json
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
PRUNED = "pruned"            # a hyperparameter search stopped the trial early (hparams_search=optuna)
INTERRUPTED = "interrupted"  # stopped by SIGINT (Ctrl-C) or SIGTERM; metrics.json's resume_command continues it
# ... and as a sweep report sees a job (which also counts a job whose metrics.json still says "running" as
# interrupted: the process was killed without a word, e.g. SIGKILL, or is still going)
MISSING = "missing"          # the grid promised this job but its folder or metrics.json does not exist

# Metric names: one spelling, ``<split>/<name>``, from ``self.log`` to metrics.json, TensorBoard and the report.
ACC = "acc"
RECALL = "recall"
LOSS = "loss"
F1 = "f1"
BIN_ACC = "bin_acc"        # a prediction counts when its class is in the image's bin (data.groups)
BIN_RECALL = "bin_recall"  # per bin: bin_recall/<bin>, e.g. test/bin_recall/hazardous
PER_CLASS_ACC = "per_class_acc"  # per class: per_class_acc/<class>, e.g. test/per_class_acc/glass
ECE = "ece"            # expected calibration error of the model's probabilities (after temperature scaling, if fitted)
ECE_RAW = "ece_raw"    # the same before temperature scaling (softmax of the logits), when a temperature was fitted
TEMPERATURE = "temperature"  # metrics.json final: the fitted temperature (null without a validation split)
TRAIN, VAL, TEST = "train", "val", "test"


def metric_key(split: str, name: str) -> str:
    """``train/acc``, ``test/loss``, ...: the one spelling of a metric of a split."""
    return f"{split}/{name}"


def bin_recall_key(split: str, bin_name: str) -> str:
    """``test/bin_recall/hazardous``: the share of a bin's images predicted into that bin."""
    return metric_key(split, f"{BIN_RECALL}/{bin_name}")


TEST_ACC = metric_key(TEST, ACC)        # the headline number of a run
TEST_RECALL = metric_key(TEST, RECALL)  # macro recall
TEST_BIN_ACC = metric_key(TEST, BIN_ACC)
TEST_ECE = metric_key(TEST, ECE)


def is_pretrained_source(weights_source: str) -> bool:
    """Whether a run's ``weights_source`` (metrics.json) names loaded weights, not a random init (``none ...``)."""
    return not weights_source.startswith("none")


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's metrics.json as a dict; None when it is absent. An unreadable file raises ValueError."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"unreadable {path}: {exc}") from exc


def read_search(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The folder's ``search.json``; None when the folder holds no search."""
    path = Path(sweep_dir) / SEARCH_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def run_status(run_dir: str | Path) -> str | None:
    """``status`` from a run folder's metrics.json (running, completed, failed); None when absent or unreadable."""
    try:
        return (read_metrics(run_dir) or {}).get("status")
    except ValueError:
        return None


def record_failure(run_dir: str | Path, exc: BaseException, status: str = FAILED, error: str | None = None,
                   **info: Any) -> None:
    """Mark the run ``status`` (failed, interrupted or pruned) in metrics.json and keep the traceback beside it.

    ``error`` (default: the exception's type and message) and ``info`` (e.g. ``resume_command``) go into
    metrics.json. On a full disk whatever does not fit is left out whole (logged), never half-written.
    """
    run_dir = Path(run_dir)
    try:
        payload = read_metrics(run_dir) or {}
    except ValueError:
        payload = {}
    payload.update(status=status, error=error or f"{type(exc).__name__}: {exc}", **info)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / FAILURE_FILE, encoding="utf-8") as handle:
            handle.write("".join(traceback.format_exception(exc)))
    except OSError as write_error:
        log.error("could not keep the traceback in %s: %s", run_dir / FAILURE_FILE, write_error)
    try:
        write_json_atomic(run_dir / METRICS_FILE, payload)
    except OSError as write_error:
        log.error("could not record status %r in %s: %s", status, run_dir / METRICS_FILE, write_error)


def start_attempt(run_dir: str | Path) -> None:
    """Before a run continues in ``run_dir``: record the attempt that stopped in metrics.json's ``earlier_attempts``.

    Each is ``{"status", "error", "epochs"}`` (epochs recorded by then; ``running``: that attempt was killed
    without a word, e.g. SIGKILL), plus ``failure_log`` when it left a ``failure.log``, which moves to
    ``attempts/failure-N.log``: a folder that completes keeps no failure unexplained. The run is then
    ``running`` again, without the earlier error.
    """
    run_dir = Path(run_dir)
    try:
        metrics = read_metrics(run_dir) or {}
    except ValueError:
        metrics = {}
    if not metrics and not (run_dir / FAILURE_FILE).is_file():
        return
    attempt = {"status": metrics.get("status"), "error": metrics.get("error"),
               "epochs": len(metrics.get("epochs") or [])}
    if (run_dir / FAILURE_FILE).is_file():
        (run_dir / ATTEMPTS_DIR).mkdir(exist_ok=True)
        number = 1
        while (run_dir / ATTEMPTS_DIR / f"failure-{number}.log").exists():
            number += 1
        archived = Path(ATTEMPTS_DIR) / f"failure-{number}.log"
        os.replace(run_dir / FAILURE_FILE, run_dir / archived)
        attempt["failure_log"] = archived.as_posix()
    metrics = {key: value for key, value in metrics.items() if key not in ("error", "resume_command")}
    metrics.update(status=RUNNING, earlier_attempts=[*(metrics.get("earlier_attempts") or []), attempt])
    write_json_atomic(run_dir / METRICS_FILE, metrics)


def planned_jobs(sweep_dir: str | Path) -> list[list[str]]:
    """The overrides of every job the sweep meant to run, rebuilt from ``multirun.yaml`` as Hydra's sweeper does."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    if not path.is_file():
        return []
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = OmegaConf.load(path).hydra
    if "BasicSweeper" not in str(hydra_cfg.sweeper.get("_target_", "")):
        return []  # another sweeper (e.g. Optuna) chooses its jobs as it goes: no grid to compare with
    params = [f"{key}={value}" for key, value in (hydra_cfg.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
