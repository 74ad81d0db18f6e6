"""The report's tables, built from the jobs of a sweep: plain rows (lists of dicts) for Markdown and CSV."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from garbage_lit.records.folder import (
    ACC,
    BIN_ACC,
    BIN_RECALL,
    COMPLETED,
    LOSS,
    PER_CLASS_ACC,
    TEST,
    TEST_ACC,
    TEST_ECE,
    TEST_RECALL,
    TRAIN,
    metric_key,
)
from garbage_lit.report.jobs import JobResult

# Override keys behind the paper's four columns (model, batch size, optimizer, lr); `seed` tells repeats apart.
PAPER_OVERRIDES = ("model", "optim", "lr", "batch_size")
SEED_KEY = "seed"
FOLD_KEY = "data.fold"  # cross-validation: a configuration's jobs on its folds (garbage_lit.report.folds)
REPEATS = (SEED_KEY, FOLD_KEY)  # keys whose jobs repeat one configuration
# Settings a reader needs beside the results, read from each job's resolved config (metrics.json "config").
RECIPE_KEYS = ("epochs", "data.image_size", "data.resize_size", "data.test_ratio", "data.val_ratio",
               "data.augment", "data.rotation_degrees", "model.weights", "model.freeze_backbone")
# The final metrics (metrics.json's "final") the summary and jobs tables show, in column order (the summary is
# ranked by test/acc). A metric the model logs as test/<name> reaches the report once its key is here.
SUMMARY_METRICS = (TEST_ACC, TEST_RECALL, TEST_ECE)


def optimizer_label(optim: dict[str, Any]) -> str:
    """``SGD``, ``SGD (momentum 0.9)``, ``Adam``: the class name plus the momentum when there is one."""
    name = str(optim.get("algorithm") or optim.get("_target_", "?")).rsplit(".", 1)[-1]  # older runs: _target_
    momentum = optim.get("momentum")
    return f"{name} (momentum {momentum:g})" if isinstance(momentum, (int, float)) and momentum else name


def job_settings(job: JobResult) -> dict[str, Any]:
    """Model, batch size, optimizer and lr of a job, read from its saved config (overrides when absent)."""
    cfg, overrides = job.config, job.override_dict
    optim = cfg.get("optim") or {}
    lr = optim.get("lr") if isinstance(optim.get("lr"), (int, float)) else cfg.get("lr", overrides.get("lr"))
    model = cfg.get("model") or {}
    # model.arch; jobs run before it existed recorded model.backbone
    return {"model": model.get("arch", model.get("backbone", overrides.get("model", "?"))),
            "batch_size": cfg.get("batch_size", overrides.get("batch_size")),
            "optimizer": optimizer_label(optim) if optim else overrides.get("optim", "?"),
            "lr": lr,
            "seed": cfg.get("seed", overrides.get(SEED_KEY))}


def varying_keys(jobs: Sequence[JobResult]) -> list[str]:
    """Override keys whose value differs between jobs, beyond the paper's four and the seed."""
    named = {*PAPER_OVERRIDES, *REPEATS}
    values: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in job.override_dict.items():
            values.setdefault(key, set()).add(value)
    keys = [k for k, v in values.items() if k not in named and not k.startswith("hydra.")
            and (len(v) > 1 or any(k not in j.override_dict for j in jobs))]
    return sorted(keys)


def fixed_overrides(jobs: Sequence[JobResult]) -> list[str]:
    """Command-line overrides every job shares (``debug=fast``, ``epochs=1``), in the first job's order."""
    with_overrides = [j.overrides for j in jobs if j.overrides]
    if not with_overrides:
        return []
    return [o for o in with_overrides[0] if not o.startswith("hydra.") and all(o in rest for rest in with_overrides)]


def fixed_recipe(jobs: Sequence[JobResult]) -> dict[str, Any]:
    """The RECIPE_KEYS that have one value in every job that recorded its config, e.g. ``{"epochs": 1}``."""
    configs = [j.metrics["config"] for j in jobs if isinstance(j.metrics.get("config"), dict)]
    fixed = {}
    for key in RECIPE_KEYS:
        values = [_lookup(config, key) for config in configs]
        if values and values[0] is not None and all(v == values[0] for v in values):
            fixed[key] = values[0]
    return fixed


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class Configuration:
    """The jobs that share one setting (model, batch size, optimizer, lr, other swept keys), one per seed and fold."""

    settings: dict[str, Any]
    jobs: list[JobResult] = field(default_factory=list)

    @property
    def completed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status == COMPLETED]

    @property
    def label(self) -> str:
        return " ".join(f"{v}" if k in ("model", "optimizer") else f"{k}={v}" for k, v in self.settings.items())

    def final(self, metric: str) -> list[float]:
        """``metric`` (e.g. ``test/acc``) of each completed job's final evaluation."""
        return [float(j.final[metric]) for j in self.completed if j.final.get(metric) is not None]

    def epoch_values(self, epoch: int, key: str) -> list[float]:
        values = []
        for job in self.completed:
            row = next((e for e in job.epochs if e.get("epoch") == epoch), None)
            if row is not None and row.get(key) is not None:
                values.append(float(row[key]))
        return values

    @property
    def num_epochs(self) -> int:
        return max((len(j.epochs) for j in self.completed), default=0)


def group_configurations(jobs: Sequence[JobResult]) -> list[Configuration]:
    """Jobs grouped by their overrides apart from the seed and the fold, in the order their first job appears.

    Grouping by overrides (not by the saved config) keeps a job that never started, and so has no
    config, beside its siblings; the displayed settings come from the first job that has a config.
    """
    extra = varying_keys(jobs)
    groups: dict[tuple, list[JobResult]] = {}
    for job in jobs:
        key = tuple(sorted((k, v) for k, v in job.override_dict.items()
                           if k not in REPEATS and not k.startswith("hydra.")))
        groups.setdefault(key, []).append(job)
    configs = []
    for members in groups.values():
        described = next((j for j in members if j.config), members[0])
        settings = {k: v for k, v in job_settings(described).items() if k != SEED_KEY}
        settings.update({k: described.override_dict.get(k, "-") for k in extra})
        configs.append(Configuration(settings, members))
    return configs


def mean_std(values: Iterable[float]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (n-1; None below two values) and n."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, None, 0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


def format_mean_std(values: Iterable[float], digits: int = 3) -> str:
    mean, std, n = mean_std(values)
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={n})" if std is not None else f"{mean:.{digits}f} (n=1)"


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def configuration_status(config: Configuration) -> str:
    """``completed`` or, e.g., ``2 completed, 1 failed``."""
    counts: dict[str, int] = {}
    for job in config.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    if set(counts) == {COMPLETED}:
        return COMPLETED
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def paper_table(configs: Sequence[Configuration]) -> list[dict[str, Any]]:
    """The paper's figure 6: per configuration, train and test loss and accuracy of every epoch (seed mean)."""
    num_epochs = max((c.num_epochs for c in configs), default=0)
    rows = []
    for config in configs:
        row: dict[str, Any] = {**config.settings, "status": configuration_status(config)}
        for epoch in range(num_epochs):
            for split in (TRAIN, TEST):
                for metric in (LOSS, ACC):
                    key = metric_key(split, metric)
                    row[f"epoch {epoch} {key}"] = _mean(config.epoch_values(epoch, key))
        rows.append(row)
    return rows


def per_class_table(configs: Sequence[Configuration]) -> list[dict[str, Any]]:
    """One row per class: its final test accuracy in each configuration (the mean over its completed seeds; None where
    the class had no test images), columns named by the configurations' labels, classes in the first job's order."""
    per_job = {config.label: [j.final.get(PER_CLASS_ACC) or {} for j in config.completed] for config in configs}
    classes = list(dict.fromkeys(name for jobs in per_job.values() for accuracies in jobs for name in accuracies))
    return [{"class": name, **{label: _mean([a[name] for a in jobs if a.get(name) is not None])
                               for label, jobs in per_job.items()}} for name in classes]


def bin_keys(configs: Sequence[Configuration]) -> list[str]:
    """The final bin metrics any completed job recorded: ``test/bin_acc``, ``test/bin_recall/<bin>``, ..."""
    prefixes = (metric_key(TEST, BIN_ACC), metric_key(TEST, BIN_RECALL) + "/")
    return sorted({k for c in configs for j in c.completed for k in j.final if k.startswith(prefixes)})


def summary_table(configs: Sequence[Configuration]) -> list[dict[str, Any]]:
    """One row per configuration, best final test accuracy first; configurations without results last.

    Each of SUMMARY_METRICS is a mean, a std and a "mean ± std" column (seed statistics); bin accuracy and per-bin
    recall (seed means) are columns when the jobs recorded them.
    """
    bins = bin_keys(configs)
    rows = []
    for config in configs:
        completed = config.completed
        row: dict[str, Any] = {**config.settings, "n": mean_std(config.final(TEST_ACC))[2]}
        for key in SUMMARY_METRICS:
            mean, std, _ = mean_std(config.final(key))
            row.update({key: mean, f"{key} std": std})
        rows.append({
            **row,
            **{f"{key} ± std": format_mean_std(config.final(key)) for key in SUMMARY_METRICS},
            "weights": "; ".join(sorted({str(j.metrics.get("weights_source")) for j in completed})) or "-",
            "s/epoch": _mean([float(j.metrics["seconds_per_epoch"]) for j in completed
                              if j.metrics.get("seconds_per_epoch") is not None]),
            "best epoch": ", ".join(str(j.metrics.get("best_epoch", "?")) for j in completed) or "-",
            "status": configuration_status(config),
            **{key: _mean(config.final(key)) for key in bins},
        })
    return sorted(rows, key=lambda r: (r[TEST_ACC] is None, -(r[TEST_ACC] or 0.0)))


def jobs_table(jobs: Sequence[JobResult], reference_sha256: str | None) -> list[dict[str, Any]]:
    """Every job with its status, final metrics, split check, error and folder."""
    rows = []
    for job in jobs:
        sha = job.manifest_sha256
        rows.append({
            "job": job.num, "status": job.status, **job_settings(job),
            **{key: job.final.get(key) for key in SUMMARY_METRICS},
            "best_epoch": job.metrics.get("best_epoch"), "seconds_per_epoch": job.metrics.get("seconds_per_epoch"),
            "weights_source": job.metrics.get("weights_source"),
            "split_manifest_sha256": sha,
            "same_split": None if sha is None or reference_sha256 is None else sha == reference_sha256,
            "error": job.error, "overrides": " ".join(job.overrides), "folder": str(job.folder),
        })
    return rows


def common_split(jobs: Sequence[JobResult]) -> tuple[str | None, list[JobResult]]:
    """The split manifest most jobs used, and the jobs that used another one."""
    counts: dict[str, int] = {}
    for job in jobs:
        if job.manifest_sha256:
            counts[job.manifest_sha256] = counts.get(job.manifest_sha256, 0) + 1
    if not counts:
        return None, []
    reference = max(counts, key=counts.get)
    return reference, [j for j in jobs if j.manifest_sha256 and j.manifest_sha256 != reference]
