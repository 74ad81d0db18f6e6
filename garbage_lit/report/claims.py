"""The paper's conclusions tested on a sweep: paired bootstrap over test images, learning speed, verdicts.

The paper (Liang & Zhou) concludes that ResNet18 beats GoogLeNet and learns faster, and that the best
setting is batch 32, SGD, lr 0.003. Every two configurations of a sweep that differ in exactly one factor
(model, optimizer, lr, batch size) are compared by the difference in final test accuracy, the paper's
choice minus the other, with a percentile interval from a paired bootstrap over the test images (all jobs
share one split; the report checks the manifest hash). With several seeds a configuration's per-image
correctness is its seeds' mean, and the spread of the per-seed differences is shown too.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from garbage_lit.records.folder import PREDICTIONS_FILE, TEST_ACC
from garbage_lit.report.tables import Configuration

FACTORS = ("model", "optimizer", "lr", "batch_size")
# The paper's winning model and best setting: the direction its claims predict for each factor.
PAPER_CHOICE = {"model": "resnet18", "optimizer": "SGD", "lr": 0.003, "batch_size": 32}
# What the paper compared its model and optimizer with; other rivals (e.g. efficientnet_lite0, AdamW) get no claim.
PAPER_RIVAL = {"model": "googlenet", "optimizer": "Adam"}
# The paper's models and optimizers: its claims speak of these configurations only (an lr pair of another model gets
# no verdict); learning rate and batch size are what its claims compare among them.
PAPER_GRID = {"model": ("resnet18", "googlenet"), "optimizer": ("SGD", "Adam")}
SPEED_FRACTION = 0.95  # "learns faster": the first epoch whose test accuracy reaches this share of the final one

HOLDS, REVERSED, WITHIN_NOISE, MIXED = "holds", "reversed", "within noise", "mixed"
NOT_TESTED = "not tested by this sweep"
NO_CLAIM = "no paper claim"
NONE_TESTED = ("None of the paper's claims is tested by this sweep: they need resnet18 and googlenet configurations "
               "that differ only in the model, or the paper's best setting (resnet18, batch 32, SGD, lr 0.003) "
               "beside another configuration (claims.csv says what each one lacks).")
NOT_PAPER_SWEEP = ("This sweep holds none of the paper's configurations (resnet18 or googlenet, trained with SGD or "
                   "Adam), so no claim of the paper is judged on it; the one-factor pairs below are measured, without "
                   "a verdict.")


@dataclass(frozen=True)
class Bootstrap:
    """Resampling settings: ``resamples`` draws of the test images, a ``confidence`` percentile interval."""

    resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0


def bootstrap_mean(values: Sequence[float] | np.ndarray,
                   settings: Bootstrap = Bootstrap()) -> tuple[float, float, float]:
    """Mean of per-image ``values`` and its percentile interval from resampling the images with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap over no images: the jobs share no test image with per-image predictions")
    rng = np.random.default_rng(settings.seed)
    means = np.concatenate([values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
                            for n in _chunks(settings.resamples, max(1, 2_000_000 // values.size))])
    tail = (1 - settings.confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def paired_bootstrap(correct_a: Sequence[float], correct_b: Sequence[float],
                     settings: Bootstrap = Bootstrap()) -> tuple[float, float, float]:
    """Accuracy of a minus accuracy of b on the same images (1 right, 0 wrong, or a seed mean) and its interval."""
    return bootstrap_mean(np.asarray(correct_a, dtype=np.float64) - np.asarray(correct_b, dtype=np.float64),
                          settings)


def verdict(low: float, high: float) -> str:
    """``holds`` when the interval of (paper's choice - other) is above 0, ``reversed`` below 0, else within noise."""
    if low > 0:
        return HOLDS
    if high < 0:
        return REVERSED
    return WITHIN_NOISE


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


# -- per-image correctness of a configuration -----------------------------------------------------------
def image_correctness(config: Configuration) -> dict[str, float] | None:
    """Per test image (file): the share of the configuration's completed seeds that got it right.

    Only images every such seed predicted count; None when no completed job left per-image predictions.
    """
    per_job = [j.predictions for j in config.completed]
    if not per_job or any(p is None for p in per_job):
        return None
    files = set.intersection(*(set(p) for p in per_job))
    return {f: statistics.fmean(float(p[f]) for p in per_job) for f in files}


def _paired(a: Configuration, b: Configuration) -> dict[str, tuple[float, float]] | None:
    """Per test image both configurations predicted: (a's correctness, b's); None without predictions."""
    correct_a, correct_b = image_correctness(a), image_correctness(b)
    if correct_a is None or correct_b is None:
        return None
    return {f: (correct_a[f], correct_b[f]) for f in sorted(set(correct_a) & set(correct_b))}


def _same_value(factor: str, ours: Any, theirs: Any) -> bool:
    if factor in ("lr", "batch_size"):
        try:
            return abs(float(ours) - float(theirs)) < 1e-12
        except (TypeError, ValueError):
            return False
    if factor == "optimizer":  # "SGD" and "SGD (momentum 0.9)" are both the paper's SGD
        return str(ours).split(" ")[0] == str(theirs)
    return str(ours) == str(theirs)


def in_paper_grid(config: Configuration) -> bool:
    """Whether the configuration is one of the paper's kind (its models and optimizers)."""
    return all(any(_same_value(f, config.settings.get(f), v) for v in values) for f, values in PAPER_GRID.items())


def is_paper_setting(config: Configuration) -> bool:
    """Whether the configuration is the paper's best setting (ResNet18, batch 32, SGD, lr 0.003)."""
    return all(_same_value(f, config.settings.get(f), v) for f, v in PAPER_CHOICE.items())


# -- one-factor pairs ------------------------------------------------------------------------------------
def one_factor_pairs(configs: Sequence[Configuration]) -> list[tuple[str, Configuration, Configuration]]:
    """(factor, a, b) for configurations whose settings differ in exactly one factor; a is the paper's choice."""
    pairs = []
    for i, first in enumerate(configs):
        for second in configs[i + 1:]:
            differ = [k for k in first.settings if first.settings[k] != second.settings.get(k)]
            if len(differ) != 1 or differ[0] not in FACTORS:
                continue
            factor = differ[0]
            if _same_value(factor, second.settings[factor], PAPER_CHOICE[factor]):
                first, second = second, first
            pairs.append((factor, first, second))
    return pairs


def paper_compares(factor: str, a: Configuration, b: Configuration) -> bool:
    """Whether the paper's conclusions predict a >= b: both are configurations of its grid, a holds its choice, b a
    value it was compared with."""
    return in_paper_grid(a) and in_paper_grid(b) and _same_value(factor, a.settings[factor], PAPER_CHOICE[factor]) \
        and (factor not in PAPER_RIVAL or _same_value(factor, b.settings[factor], PAPER_RIVAL[factor]))


def pair_row(factor: str, a: Configuration, b: Configuration, settings: Bootstrap = Bootstrap()) -> dict[str, Any]:
    """Final test accuracy of a and b, a - b with its bootstrap interval and seed spread, and the verdict."""
    acc_a, acc_b = a.final(TEST_ACC), b.final(TEST_ACC)
    row: dict[str, Any] = {
        "factor": factor, "a": a.settings[factor], "b": b.settings[factor],
        "fixed": ", ".join(f"{k}={v}" for k, v in a.settings.items() if k != factor),
        f"a {TEST_ACC}": statistics.fmean(acc_a) if acc_a else None,
        f"b {TEST_ACC}": statistics.fmean(acc_b) if acc_b else None,
        "difference": None, "low": None, "high": None, "images": 0, "seeds": min(len(acc_a), len(acc_b)),
        "seed spread": _seed_spread(a, b)}
    paired = _paired(a, b)
    if paired:
        row["difference"], row["low"], row["high"] = paired_bootstrap(*zip(*paired.values()), settings)
        row["images"] = len(paired)
    if not paper_compares(factor, a, b):
        row["verdict"] = NO_CLAIM
    elif paired is None:
        row["verdict"] = f"no per-image predictions ({PREDICTIONS_FILE} missing)" if acc_a and acc_b \
            else "no completed job"
    elif not paired:
        row["verdict"] = "no test image in common (different splits?)"
    else:
        row["verdict"] = verdict(row["low"], row["high"])
    return row


def _seed_spread(a: Configuration, b: Configuration) -> float | None:
    """Sample std over seeds of (a - b) final test accuracy, pairing jobs by seed; None below two seeds."""
    by_seed = [{j.config.get("seed"): float(j.final[TEST_ACC]) for j in c.completed
                if j.final.get(TEST_ACC) is not None} for c in (a, b)]
    diffs = [by_seed[0][s] - by_seed[1][s] for s in by_seed[0] if s in by_seed[1]]
    return statistics.stdev(diffs) if len(diffs) > 1 else None


# -- learning speed --------------------------------------------------------------------------------------
def first_epoch_reaching(epochs: Sequence[dict[str, Any]], final_acc: float,
                         fraction: float = SPEED_FRACTION) -> int | None:
    """The first epoch (counted from 0, as metrics.json) whose ``test/acc`` reached ``fraction`` of ``final_acc``."""
    for row in sorted(epochs, key=lambda r: r["epoch"]):
        if row.get(TEST_ACC) is not None and row[TEST_ACC] >= fraction * final_acc:
            return int(row["epoch"])
    return None


def learning_speed(config: Configuration) -> float | None:
    """Mean over the completed seeds of :func:`first_epoch_reaching` (their own final test accuracy)."""
    reached = [first_epoch_reaching(j.epochs, float(j.final[TEST_ACC])) for j in config.completed
               if j.final.get(TEST_ACC) is not None]
    reached = [r for r in reached if r is not None]
    return statistics.fmean(reached) if reached else None


def speed_rows(configs: Sequence[Configuration]) -> list[dict[str, Any]]:
    """Per configuration: the first epoch at 95% of its final test accuracy, that accuracy, and the epochs it ran.

    (A model that never learns reaches 95% of its chance-level final accuracy at once: read both columns.)
    """
    return [{**c.settings, f"first epoch at {SPEED_FRACTION:.0%} of final {TEST_ACC}": learning_speed(c),
             f"final {TEST_ACC}": statistics.fmean(c.final(TEST_ACC)) if c.final(TEST_ACC) else None,
             "epochs run": c.num_epochs} for c in configs]


# -- the claims ------------------------------------------------------------------------------------------
@dataclass
class Claims:
    """The paper's conclusions judged on one sweep: one row per claim, the pairs and speeds behind them."""

    claim_rows: list[dict[str, Any]]
    pair_rows: list[dict[str, Any]]
    speed_rows: list[dict[str, Any]]
    bootstrap: Bootstrap


def judge_claims(configs: Sequence[Configuration], settings: Bootstrap = Bootstrap()) -> Claims:
    """Test the paper's three conclusions on ``configs`` (the configurations of one sweep)."""
    pairs = one_factor_pairs(configs)
    rows = [pair_row(factor, a, b, settings) for factor, a, b in pairs]
    model_pairs = [(p, r) for p, r in zip(pairs, rows)
                   if p[0] == "model" and paper_compares(*p)]
    claims = [_beats_claim(model_pairs, settings), _faster_claim([p for p, _ in model_pairs]),
              _best_setting_claim(configs, settings)]
    return Claims(claims, rows, speed_rows(configs), settings)


def _claim(claim: str, verdict_: str, numbers: str) -> dict[str, Any]:
    return {"claim": claim, "verdict": verdict_, "numbers": numbers}


def _beats_claim(model_pairs: list[tuple[tuple, dict[str, Any]]], settings: Bootstrap) -> dict[str, Any]:
    """ResNet18 vs GoogLeNet: pooled over every model pair (per-image differences averaged), plus the tally."""
    claim = "ResNet18 beats GoogLeNet (final test accuracy)"
    tested = [(p, r) for p, r in model_pairs if r["difference"] is not None]
    if not tested:
        return _claim(claim, NOT_TESTED, "needs resnet18 and googlenet configurations that differ only in model"
                      + (" and their per-image predictions" if model_pairs else ""))
    paired = [_paired(a, b) for (_, a, b), _ in tested]
    files = sorted(set.intersection(*(set(p) for p in paired)))
    pooled = [statistics.fmean(p[f][0] - p[f][1] for p in paired) for f in files]
    mean, low, high = bootstrap_mean(pooled, settings)
    tally = ", ".join(f"{n} {v}" for v, n in Counter(r["verdict"] for _, r in tested).items())
    return _claim(claim, verdict(low, high),
                  f"resnet18 - googlenet = {mean:+.4f} [{low:+.4f}, {high:+.4f}] ({settings.confidence:.0%} "
                  f"paired bootstrap over {len(files)} test images, mean of {len(tested)} one-factor pair(s): "
                  f"{tally})")


def _faster_claim(model_pairs: list[tuple[str, Configuration, Configuration]]) -> dict[str, Any]:
    """ResNet18 learns faster: an earlier first epoch at 95% of its final test accuracy, pair by pair."""
    claim = f"ResNet18 learns faster (first epoch at {SPEED_FRACTION:.0%} of its final test accuracy)"
    speeds = [(learning_speed(a), learning_speed(b)) for _, a, b in model_pairs]
    speeds = [(x, y) for x, y in speeds if x is not None and y is not None]
    if not speeds:
        return _claim(claim, NOT_TESTED, "needs resnet18 and googlenet configurations that differ only in model")
    epochs = max(c.num_epochs for _, a, b in model_pairs for c in (a, b))
    if epochs < 2:
        return _claim(claim, NOT_TESTED, "needs more than one epoch: after one, every job is at its final accuracy")
    verdicts = [HOLDS if x < y else REVERSED if x > y else WITHIN_NOISE for x, y in speeds]
    counts = Counter(verdicts)
    overall = _overall(counts)
    return _claim(claim, overall,
                  f"first epoch resnet18 {statistics.fmean(x for x, _ in speeds):.2f} vs googlenet "
                  f"{statistics.fmean(y for _, y in speeds):.2f} (counted from 0; mean over {len(speeds)} pair(s): "
                  + ", ".join(f"{n} {v}" for v, n in counts.items())
                  + f"; the same epoch counts as within noise; the sweep ran {epochs} epoch(s))")


def _best_setting_claim(configs: Sequence[Configuration], settings: Bootstrap) -> dict[str, Any]:
    """The paper's best setting vs the sweep's best configuration (by mean final test accuracy)."""
    claim = "Best setting: resnet18, batch 32, SGD, lr 0.003"
    paper = next((c for c in configs if is_paper_setting(c) and c.final(TEST_ACC)), None)
    ranked = sorted((c for c in configs if c.final(TEST_ACC)), key=lambda c: -statistics.fmean(c.final(TEST_ACC)))
    if paper is None or len(ranked) < 2:
        return _claim(claim, NOT_TESTED, "needs a completed job with that setting and at least one other configuration")
    best = ranked[0]
    rival = ranked[1] if best is paper else best
    paired = _paired(paper, rival)
    acc = statistics.fmean(paper.final(TEST_ACC))
    if not paired:
        return _claim(claim, HOLDS if best is paper else NOT_TESTED,
                      f"paper's setting {acc:.4f}, rank {ranked.index(paper) + 1} of {len(ranked)}; no per-image "
                      f"predictions shared with {rival.label} for an interval")
    mean, low, high = paired_bootstrap(*zip(*paired.values()), settings)
    interval = f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"
    if best is paper:
        return _claim(claim, HOLDS, f"it is the sweep's best ({acc:.4f}); minus the runner-up ({rival.label}) = "
                                    f"{interval}" + ("" if low > 0 else ", within noise of it"))
    return _claim(claim, WITHIN_NOISE if high >= 0 else REVERSED,
                  f"paper's setting {acc:.4f}, rank {ranked.index(paper) + 1} of {len(ranked)}; minus the sweep's "
                  f"best ({best.label}, {statistics.fmean(best.final(TEST_ACC)):.4f}) = {interval}")


def _overall(counts: Counter) -> str:
    """One verdict from per-pair ones: holds / reversed when all decided pairs agree, mixed when they do not."""
    if counts.get(HOLDS) and counts.get(REVERSED):
        return MIXED
    return HOLDS if counts.get(HOLDS) else REVERSED if counts.get(REVERSED) else WITHIN_NOISE

