"""What a search leaves in its sweep folder (``python -m garbage_lit.report`` reads it back).

``search.json`` (the study, trial counts, cost, best trial, the final run's test result), ``trials.csv`` (one
row per trial: params, the validation metric, state, seconds), ``best_params.yaml``, ``best_overrides.txt``
(the best configuration as one command-line override line) and the plots ``optimization_history.png``,
``param_importances.png`` and ``slice.png``.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.records.folder import SEARCH_FILE, TRIALS_FILE
from garbage_lit.records.tables import write_csv
from garbage_lit.search.storage import shown

log = logging.getLogger(__name__)

BEST_PARAMS_FILE = "best_params.yaml"
BEST_OVERRIDES_FILE = "best_overrides.txt"


def trial_seconds(trial: FrozenTrial) -> float | None:
    """Wall time of a finished trial (ask to tell)."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)


def trial_rows(study: optuna.Study, metric: str) -> list[dict[str, Any]]:
    """One row per trial: number, state, the metric, every searched parameter, seconds, epochs reported, error."""
    names = sorted({name for t in study.trials for name in t.params})
    rows = []
    for trial in study.get_trials(deepcopy=False):
        steps = trial.intermediate_values
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), metric: trial.value,
                     **{name: trial.params.get(name) for name in names}, "seconds": trial_seconds(trial),
                     "epochs_run": max(steps) + 1 if steps else None, "error": trial.user_attrs.get("error"),
                     "folder": trial.user_attrs.get("folder")})
    return rows


def write_outputs(study: optuna.Study, sweep_dir: Path, metric: str, best_overrides: Sequence[str],
                  final: dict[str, Any] | None, settings: Any, wall_minutes: float | None) -> None:
    """Write search.json, trials.csv, the best parameters (YAML and override line) and the plots."""
    rows = trial_rows(study, metric)
    write_csv(sweep_dir / TRIALS_FILE, rows, None if rows else ["trial", "state"])
    states = {state.name.lower(): sum(1 for t in study.trials if t.state == state) for state in TrialState}
    seconds = sorted(s for s in (trial_seconds(t) for t in study.trials if t.state != TrialState.FAIL) if s)
    summary: dict[str, Any] = {
        "study_name": study.study_name, "storage": shown(str(settings.storage)), "optimized_metric": metric,
        "direction": str(settings.direction), "n_trials": int(settings.n_trials), "trials": states,
        "trial_minutes": round(sum(seconds) / 60, 2), "median_trial_seconds": seconds[len(seconds) // 2] if seconds
        else None, "wall_minutes_last_run": round(wall_minutes, 2) if wall_minutes is not None else None,
        "best": None, "final": final}
    if best_overrides:
        best = study.best_trial
        summary["best"] = {"trial": best.number, metric: best.value, "params": best.params,
                           "overrides": list(best_overrides)}
        (sweep_dir / BEST_OVERRIDES_FILE).write_text(" ".join(shlex.quote(o) for o in best_overrides) + "\n")
        (sweep_dir / BEST_PARAMS_FILE).write_text(
            f"# Best of {states['complete']} completed trials of study {study.study_name!r} by {metric} "
            f"(validation). Run it: python -m garbage_lit.train $(cat {BEST_OVERRIDES_FILE})\n"
            + yaml.safe_dump({"trial": best.number, metric: best.value, "params": best.params,
                              "overrides": list(best_overrides)}, sort_keys=False))
    write_json_atomic(sweep_dir / SEARCH_FILE, summary)
    _write_plots(study, sweep_dir, metric)


def _write_plots(study: optuna.Study, sweep_dir: Path, metric: str) -> None:
    """Optimization history, parameter importances (needs two completed trials) and slice plots as PNG."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        return
    makers = {"optimization_history.png": optuna_plots.plot_optimization_history, "slice.png": optuna_plots.plot_slice}
    if len(complete) > 1 and any(len({str(t.params.get(p)) for t in complete}) > 1 for p in study.best_params):
        makers["param_importances.png"] = optuna_plots.plot_param_importances
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, make in makers.items():
            axes = make(study, target_name=metric)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.savefig(sweep_dir / name, dpi=110, bbox_inches="tight")
            plt.close(figure)
