"""The search loop behind ``hparams_search=optuna``: ask Optuna, launch trials through Hydra, tell the results.

The study lives in a persistent storage (``hparams_search.storage``, default ``sqlite:///<sweep dir>/optuna.db``),
so re-running the same command continues it: ``n_trials`` counts the study's finished trials (complete,
pruned, failed), and only the remainder runs. A trial that raised is marked failed and the search goes on.
Trials optimize ``optimized_metric`` (a validation metric) and never evaluate the test split (``test=false``);
at the end the best parameters run once more with ``test=true`` (``hparams_search.final.overrides``), on the
same training split as the trials, and that run's test accuracy is the search's one test result.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from garbage_lit.errors import ConfigError
from garbage_lit.records.folder import COMPLETED, FAILED, MULTIRUN_FILE, read_metrics, read_search
from garbage_lit.search.outputs import write_outputs
from garbage_lit.search.space import override_value, parse_space, suggest
from garbage_lit.search.storage import check_driver, open_storage, shown

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
FINAL_DIR = "final"


def check_search(config: DictConfig, key: str) -> None:
    """Refuse a search that would tune on the test split, or that has no validation split to tune on."""
    metric = str(config.get("optimized_metric"))
    if not metric.startswith("val/"):
        raise ConfigError(f"optimized_metric={metric!r}: {key}=optuna optimizes a validation metric, never a test "
                          f"one; set optimized_metric=val/acc (or another val/... metric)")
    val_ratio = OmegaConf.select(config, "data.val_ratio", default=0)
    if not val_ratio or val_ratio <= 0:
        raise ConfigError(f"data.val_ratio={val_ratio}: {key}=optuna needs a validation split to optimize "
                          f"{metric} on; set data.val_ratio=0.1 (a share of the training images; the test split is "
                          f"only used once, by the final run of the best parameters)")


def counted(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: finished ones, not those a killed search left behind."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if not t.user_attrs.get("interrupted"))


class Search:
    """One ``hparams_search`` run: the study, its space, and the launcher that runs trials as Hydra jobs."""

    def __init__(self, config: DictConfig, launcher: Launcher, config_loader: Any, arguments: Sequence[str],
                 key: str = "hparams_search") -> None:
        check_search(config, key)
        self.config, self.launcher, self.config_loader, self.key = config, launcher, config_loader, key
        self.settings = config[key]
        self.metric = str(config.optimized_metric)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        params = OmegaConf.to_container(self.settings.params, resolve=True)
        unknown = sorted(set(self.settings.exclude) - set(params))
        if unknown:
            raise ConfigError(f"{key}.exclude names {', '.join(unknown)}, which {key}.params does not search; "
                              f"searched keys: {', '.join(params)}")
        params = {k: v for k, v in params.items() if k not in set(self.settings.exclude)}
        self.space, self.fixed = parse_space(params, list(arguments), prefix=f"{key}.params.")
        self.groups = set(config.hydra.runtime.choices)  # config groups (optim, model, ...) are chosen first
        self._present: dict[tuple[str, ...], DictConfig] = {}

    # -- the study ----------------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        """Create the study, or load it with its finished trials; refuse one that belongs to another command."""
        settings = self.settings
        check_driver(str(settings.storage), f"{self.key}.storage")
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            study_name=settings.study_name, storage=open_storage(str(settings.storage)), direction=settings.direction,
            sampler=_instantiate_or(settings.sampler, None), pruner=_instantiate_or(settings.pruner,
                                                                                      optuna.pruners.NopPruner()),
            load_if_exists=True)
        task = self._task_overrides()
        stored = study.user_attrs.get("task_overrides")
        if stored is None:
            study.set_user_attr("task_overrides", task)
            study.set_user_attr("optimized_metric", self.metric)
        elif sorted(stored) != sorted(task):
            raise ConfigError(f"{self.key}.study_name={settings.study_name!r} in {shown(settings.storage)} holds a "
                              f"study of another command (overrides {' '.join(stored)}); this one has "
                              f"{' '.join(task)}. Set {self.key}.study_name=<new name> (or hydra.sweep.dir=<new "
                              f"folder>) for a new study")
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            # Only this process runs the study's trials (parallelism is the launcher's), so these were killed.
            interrupted = optuna.trial.Trial(study, trial._trial_id)  # no public way to reopen a trial by number
            interrupted.set_user_attr("interrupted", True)
            interrupted.set_user_attr("error", "interrupted: the search was killed during this trial")
            study.tell(trial.number, state=TrialState.FAIL)
            log.info("trial %d was interrupted by an earlier kill: marked failed, run again as a new trial",
                     trial.number)
        return study

    def run(self) -> optuna.Study:
        """Run trials until the study has ``n_trials`` finished ones, then write outputs and the final run."""
        study = self.open_study()
        OmegaConf.save(self.config, self.sweep_dir / MULTIRUN_FILE)
        started, done_before = time.perf_counter(), counted(study)
        log.info("study %r in %s: %d of %d trials done, optimizing %s (%s)", self.settings.study_name,
                 shown(self.settings.storage), done_before, self.settings.n_trials, self.metric,
                 self.settings.direction)
        while (remaining := self.settings.n_trials - counted(study)) > 0:
            batch = [study.ask() for _ in range(min(self.settings.n_jobs, remaining))]
            self._run_batch(study, batch)
        minutes = (time.perf_counter() - started) / 60
        final = self._final(study)
        write_outputs(study, self.sweep_dir, self.metric, self._best_overrides(study), final, self.settings,
                      minutes if counted(study) > done_before else None)
        return study

    # -- trials -------------------------------------------------------------------------------------
    def _run_batch(self, study: optuna.Study, batch: list[optuna.Trial]) -> None:
        jobs = []
        for trial in batch:
            params = self._suggest(trial)
            trial.set_user_attr("folder", str(self.sweep_dir / str(trial.number)))
            jobs.append([*self.fixed, *(f"{k}={override_value(v)}" for k, v in params.items()),
                         f"{self.key}.trial_id={trial._trial_id}"])  # what Trial(study, id) reopens in the job
        numbers = [t.number for t in batch]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            returns = self.launcher.launch(jobs, initial_job_idx=numbers[0])  # job folder N holds trial N
        else:
            returns = [r for job, n in zip(jobs, numbers) for r in self.launcher.launch([job], initial_job_idx=n)]
        for trial, result in zip(batch, returns):
            self._tell(study, trial, result)

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample config groups first, then the keys the chosen groups have (momentum only where optim has it)."""
        params = {k: suggest(trial, k, d) for k, d in self.space.items() if k in self.groups}
        present = self._config_with([f"{k}={override_value(v)}" for k, v in params.items()])
        for key, dist in self.space.items():
            if key not in self.groups and OmegaConf.select(present, key, default=_ABSENT) is not _ABSENT:
                params[key] = suggest(trial, key, dist)
        return params

    def _config_with(self, group_overrides: list[str]) -> DictConfig:
        key = tuple(group_overrides)
        if key not in self._present:
            self._present[key] = self.config_loader.load_sweep_config(self.config, [*self.fixed, *group_overrides])
        return self._present[key]

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
        if result.status == JobStatus.COMPLETED:
            value = result.return_value
            if value is None or (isinstance(value, float) and math.isnan(value)):
                trial.set_user_attr("error", f"the trial logged no {self.metric} (is data.val_ratio > 0?)")
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, float(value))
                log.info("trial %d: %s=%.4f %s", trial.number, self.metric, value, trial.params)
            return
        error = result._return_value  # the public return_value re-raises it after printing "Error executing job"
        if isinstance(error, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned (%s)", trial.number, error)
            return
        trial.set_user_attr("error", f"{type(error).__name__}: {error}")
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed, the search goes on: %s: %s (traceback in %s/failure.log)", trial.number,
                    type(error).__name__, error, trial.user_attrs.get("folder"))

    # -- the end ------------------------------------------------------------------------------------
    def _task_overrides(self) -> list[str]:
        """The command's overrides that define the task (data, model, ...): not the search's or Hydra's settings."""
        return [o for o in self.fixed if not o.lstrip("~+").startswith((f"{self.key}=", f"{self.key}.", "hydra."))]

    def _best_overrides(self, study: optuna.Study) -> list[str]:
        """The task's own overrides plus the best parameters: one ready-to-run line (no search settings)."""
        if not _has_complete(study):
            return []
        return [*self._task_overrides(), *(f"{k}={override_value(v)}" for k, v in study.best_trial.params.items())]

    def _final(self, study: optuna.Study) -> dict[str, Any] | None:
        """Train the best parameters once more with the test split on; reuse that run if it already completed."""
        final_settings = self.settings.final
        if not final_settings.enabled or not _has_complete(study):
            return None
        best = study.best_trial
        folder = self.sweep_dir / FINAL_DIR
        previous = (read_search(self.sweep_dir) or {}).get("final") or {}
        metrics = read_metrics(folder) if folder.is_dir() else None
        if previous.get("trial") != best.number or not metrics or metrics.get("status") != COMPLETED:
            overrides = [*self.fixed, *(f"{k}={override_value(v)}" for k, v in best.params.items()),
                         *final_settings.overrides, f"hydra.sweep.subdir={FINAL_DIR}"]
            log.info("final run of the best parameters (trial %d, %s=%.4f) with the test split: %s", best.number,
                     self.metric, best.value, " ".join(overrides))
            [result] = self.launcher.launch([overrides], initial_job_idx=len(study.trials))
            if result.status != JobStatus.COMPLETED:
                log.warning("the final run failed: %s", result._return_value)
                return {"trial": best.number, "folder": str(folder), "status": FAILED,
                        "error": str(result._return_value)}
            metrics = read_metrics(folder)
        final = metrics["final"]
        return {"trial": best.number, "folder": str(folder), "status": COMPLETED,
                "trained_on": "train split (the validation split held out, as in the trials)",
                self.metric: final.get(self.metric), **{k: v for k, v in final.items()
                                                       if k.startswith("test/")}, "epoch": final.get("epoch")}


_ABSENT = object()


def _has_complete(study: optuna.Study) -> bool:
    return any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def _instantiate_or(conf: Any, default: Any) -> Any:
    from hydra.utils import instantiate

    return instantiate(conf) if conf else default
