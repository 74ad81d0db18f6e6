"""Cross-validation in a sweep: configurations measured on the same folds, their mean ± sd and paired differences.

Jobs that differ only in ``data.fold`` (and the seed) are one configuration (:func:`~garbage_lit.report.tables.
group_configurations`). Each job is measured on the part its fold holds out: ``test/acc`` with ``data.fold_as=test``
(k-fold cross-validation), the kept epoch's ``val/acc`` with ``data.fold_as=val`` (recipes compared without reading
the test split). Two configurations are compared on the folds (and seeds) both completed: the mean of the per-fold
differences, their sd and a Student-t interval. Pairing cancels what makes one fold harder than another, which is
most of the spread between folds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from scipy import stats

from garbage_lit.records.folder import ACC, COMPLETED, TEST_ACC, VAL, metric_key
from garbage_lit.report.jobs import JobResult
from garbage_lit.report.tables import Configuration, common_split, mean_std

VAL_ACC = metric_key(VAL, ACC)
ALL_PAIRS_UP_TO = 6  # configurations; with more, each is compared with the best one only


def fold_of(job: JobResult) -> dict[str, Any] | None:
    """The job's fold record (``{"folds": k, "fold": i, "as": "test"}``), None for a job on one split."""
    return (job.metrics.get("data") or {}).get("fold")


def held_out_metric(configs: Sequence[Configuration]) -> str | None:
    """What the folds' jobs were measured on: ``test/acc`` (folds as test) or ``val/acc`` (folds as validation);
    None when no completed job ran on a fold."""
    records = [fold_of(j) for c in configs for j in c.completed if fold_of(j)]
    if not records:
        return None
    return VAL_ACC if all(r.get("as") == VAL for r in records) else TEST_ACC


def held_out_values(config: Configuration, metric: str) -> dict[tuple[int, Any], float]:
    """Each completed job's ``metric`` keyed by (fold, seed)."""
    values = {}
    for job in config.completed:
        record, value = fold_of(job), job.final.get(metric)
        if record and value is not None:
            values[(record["fold"], (job.metrics.get("config") or {}).get("seed"))] = float(value)
    return values


def fold_rows(configs: Sequence[Configuration], metric: str) -> list[dict[str, Any]]:
    """One row per configuration: the metric's mean ± sd over its folds (and seeds), its lowest and highest fold."""
    rows = []
    for config in configs:
        values = held_out_values(config, metric)
        mean, sd, n = mean_std(values.values())
        rows.append({**config.settings, "folds": n, metric: mean, f"{metric} sd": sd,
                     "lowest fold": min(values.values(), default=None),
                     "highest fold": max(values.values(), default=None)})
    return sorted(rows, key=lambda r: (r[metric] is None, -(r[metric] or 0.0)))


def paired_difference(a: dict[tuple[int, Any], float], b: dict[tuple[int, Any], float],
                      confidence: float = 0.95) -> dict[str, Any] | None:
    """Mean, sd and Student-t interval of ``a - b`` over the folds both have; None below two shared folds."""
    shared = sorted(set(a) & set(b), key=str)
    if len(shared) < 2:
        return None
    differences = [a[k] - b[k] for k in shared]
    mean, sd, n = statistics.fmean(differences), statistics.stdev(differences), len(differences)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return {"n": n, "difference": mean, "sd": sd, "low": mean - half, "high": mean + half,
            "verdict": "above 0" if mean - half > 0 else "below 0" if mean + half < 0 else "includes 0"}


def paired_rows(configs: Sequence[Configuration], metric: str, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Paired differences (first minus second) between configurations on the same folds: every pair when there are
    at most ``ALL_PAIRS_UP_TO`` configurations, else each against the one with the best mean."""
    values = {config.label: held_out_values(config, metric) for config in configs}
    ranked = sorted(values, key=lambda label: -statistics.fmean(values[label].values()) if values[label] else math.inf)
    if len(ranked) <= ALL_PAIRS_UP_TO:
        pairs = list(combinations(ranked, 2))
    else:
        pairs = [(ranked[0], other) for other in ranked[1:]]
    rows = []
    for first, second in pairs:
        difference = paired_difference(values[first], values[second], confidence)
        if difference is not None:
            rows.append({"first": first, "second": second, "metric": metric, **difference})
    return rows


def on_folds(jobs: Sequence[JobResult]) -> bool:
    """Whether any completed job of the sweep ran on a fold."""
    return any(fold_of(j) for j in jobs if j.status == COMPLETED)


def jobs_off_their_folds_split(jobs: Sequence[JobResult]) -> list[JobResult]:
    """Jobs whose split differs from the one most jobs of the same fold used (each fold has its own split)."""
    by_fold: dict[Any, list[JobResult]] = {}
    for job in jobs:
        record = fold_of(job)
        by_fold.setdefault(record["fold"] if record else None, []).append(job)
    return [job for members in by_fold.values() for job in common_split(members)[1]]
