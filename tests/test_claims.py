"""The paper's claims on hand-made sweeps with known answers: bootstrap, one-factor pairs, learning speed, verdicts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from garbage_lit.records.folder import PREDICTION_COLUMNS, PREDICTIONS_FILE
from garbage_lit.report.claims import (
    HOLDS,
    NO_CLAIM,
    NOT_TESTED,
    REVERSED,
    WITHIN_NOISE,
    Bootstrap,
    bootstrap_mean,
    first_epoch_reaching,
    judge_claims,
    one_factor_pairs,
    paired_bootstrap,
    verdict,
)
from garbage_lit.report.jobs import JobResult
from garbage_lit.report.tables import group_configurations

IMAGES = 40
QUICK = Bootstrap(resamples=500)


def test_identical_predictions_differ_by_zero_with_a_zero_interval():
    right = np.array([1, 0, 1, 1, 0] * 8)
    assert paired_bootstrap(right, right) == (0.0, 0.0, 0.0)


def test_always_right_vs_wrong_on_half_excludes_zero():
    mean, low, high = paired_bootstrap(np.ones(IMAGES), np.array([1, 0] * (IMAGES // 2)))
    assert mean == 0.5
    assert 0 < low < 0.5 < high <= 0.75
    assert verdict(low, high) == HOLDS and verdict(-high, -low) == REVERSED


def test_interval_widens_with_confidence_and_is_reproducible():
    values = np.random.default_rng(1).integers(0, 2, 200) - 0.5
    narrow = bootstrap_mean(values, Bootstrap(confidence=0.5))
    wide = bootstrap_mean(values, Bootstrap(confidence=0.99))
    assert wide[1] < narrow[1] <= narrow[2] < wide[2]
    assert bootstrap_mean(values) == bootstrap_mean(values)
    assert verdict(-0.1, 0.2) == WITHIN_NOISE
    with pytest.raises(ValueError, match="no images"):
        bootstrap_mean([])


def test_first_epoch_at_95_percent_of_final_counts_from_0_as_metrics_json():
    epochs = [{"epoch": 0, "test/acc": 0.5}, {"epoch": 1, "test/acc": 0.96}, {"epoch": 2, "test/acc": 1.0}]
    assert first_epoch_reaching(epochs, 1.0) == 1
    assert first_epoch_reaching(epochs, 0.5) == 0
    assert first_epoch_reaching([{"epoch": 0, "test/acc": None}], 0.5) is None


def _job(tmp_path: Path, num: int, model: str, lr: float, right: int, seed: int = 0,
         curve: tuple[float, ...] | None = None) -> JobResult:
    """A completed job whose final test got the first ``right`` of IMAGES images right."""
    folder = tmp_path / str(num)
    folder.mkdir()
    with (folder / PREDICTIONS_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        writer.writerows([f"c/img{i}.jpg", "c", "c" if i < right else "d", 0.9] for i in range(IMAGES))
    acc = right / IMAGES
    curve = curve or (acc, acc)
    config = {"model": {"backbone": model}, "optim": {"_target_": "torch.optim.SGD", "lr": lr, "momentum": 0.0},
              "batch_size": 32, "lr": lr, "seed": seed}
    metrics = {"status": "completed", "weights_source": "none (random init)", "final": {"test/acc": acc},
               "epochs": [{"epoch": e, "test/acc": a} for e, a in enumerate(curve)]}
    return JobResult(num, folder, "completed", [f"model={model}", f"lr={lr}", f"seed={seed}"], config, metrics)


def _claims(jobs: list[JobResult]) -> dict[str, dict]:
    claims = judge_claims(group_configurations(jobs), QUICK)
    return {row["claim"].split(" (")[0]: row for row in claims.claim_rows} | {"_pairs": claims.pair_rows,
                                                                            "_speed": claims.speed_rows}


def test_resnet_right_everywhere_beats_googlenet_right_on_half(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 40, curve=(1.0, 1.0)),
            _job(tmp_path, 1, "googlenet", 0.003, 20, curve=(0.2, 0.5)),
            _job(tmp_path, 2, "resnet18", 0.01, 36, curve=(0.9, 0.9)),
            _job(tmp_path, 3, "googlenet", 0.01, 20, curve=(0.3, 0.5))]
    claims = _claims(jobs)
    pairs = claims["_pairs"]
    assert {(p["factor"], p["a"], p["b"]) for p in pairs} == {("model", "resnet18", "googlenet"),
                                                               ("lr", 0.003, 0.01)}
    model_003 = next(p for p in pairs if p["factor"] == "model" and "lr=0.003" in p["fixed"])
    assert model_003["difference"] == pytest.approx(0.5) and model_003["low"] > 0
    assert model_003["verdict"] == HOLDS and model_003["images"] == IMAGES
    assert claims["ResNet18 beats GoogLeNet"]["verdict"] == HOLDS
    assert "+0.4500" in claims["ResNet18 beats GoogLeNet"]["numbers"]  # mean of 0.5 and 0.4
    assert claims["ResNet18 learns faster"]["verdict"] == HOLDS      # epoch 0 vs epoch 1
    assert "first epoch resnet18 0.00 vs googlenet 1.00 (counted from 0" in claims["ResNet18 learns faster"]["numbers"]
    speed = {row["model"]: row["first epoch at 95% of final test/acc"] for row in claims["_speed"]}
    assert speed == {"resnet18": 0, "googlenet": 1}
    best = claims["Best setting: resnet18, batch 32, SGD, lr 0.003"]
    assert best["verdict"] == HOLDS and "sweep's best" in best["numbers"]


def test_googlenet_better_reverses_the_claim_and_the_best_setting(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 20), _job(tmp_path, 1, "googlenet", 0.003, 40)]
    claims = _claims(jobs)
    assert claims["ResNet18 beats GoogLeNet"]["verdict"] == REVERSED
    assert claims["Best setting: resnet18, batch 32, SGD, lr 0.003"]["verdict"] == REVERSED
    assert claims["ResNet18 learns faster"]["verdict"] == WITHIN_NOISE  # both reach 95% in their first epoch


def test_a_small_difference_is_within_noise(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 30), _job(tmp_path, 1, "googlenet", 0.003, 31)]
    claims = _claims(jobs)
    assert claims["ResNet18 beats GoogLeNet"]["verdict"] == WITHIN_NOISE
    assert claims["Best setting: resnet18, batch 32, SGD, lr 0.003"]["verdict"] == WITHIN_NOISE


def test_seeds_are_averaged_per_image_and_their_spread_reported(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 40, seed=0), _job(tmp_path, 1, "resnet18", 0.003, 30, seed=1),
            _job(tmp_path, 2, "googlenet", 0.003, 20, seed=0), _job(tmp_path, 3, "googlenet", 0.003, 20, seed=1)]
    (pair,) = _claims(jobs)["_pairs"]
    assert pair["seeds"] == 2
    assert pair["difference"] == pytest.approx(0.875 - 0.5)
    assert pair["seed spread"] == pytest.approx(np.std([0.5, 0.25], ddof=1))


def test_claims_the_sweep_cannot_test_say_so(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 30), _job(tmp_path, 1, "resnet18", 0.01, 20)]
    claims = _claims(jobs)
    assert claims["ResNet18 beats GoogLeNet"]["verdict"] == NOT_TESTED
    assert claims["ResNet18 learns faster"]["verdict"] == NOT_TESTED
    assert claims["Best setting: resnet18, batch 32, SGD, lr 0.003"]["verdict"] == HOLDS
    (only,) = one_factor_pairs(group_configurations(jobs))
    assert only[0] == "lr" and only[1].settings["lr"] == 0.003


def test_one_epoch_cannot_tell_which_model_learns_faster(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 40, curve=(1.0,)), _job(tmp_path, 1, "googlenet", 0.003, 20,
                                                                          curve=(0.5,))]
    faster = _claims(jobs)["ResNet18 learns faster"]
    assert faster["verdict"] == NOT_TESTED and "more than one epoch" in faster["numbers"]


def test_without_predictions_the_pair_says_why(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 30), _job(tmp_path, 1, "googlenet", 0.003, 20)]
    (tmp_path / "1" / PREDICTIONS_FILE).unlink()
    claims = _claims(jobs)
    assert "no per-image predictions" in claims["_pairs"][0]["verdict"]
    assert claims["ResNet18 beats GoogLeNet"]["verdict"] == NOT_TESTED


def test_a_rival_the_paper_never_tried_gets_no_claim(tmp_path):
    jobs = [_job(tmp_path, 0, "resnet18", 0.003, 40), _job(tmp_path, 1, "efficientnet_lite0", 0.003, 20)]
    claims = _claims(jobs)
    (pair,) = claims["_pairs"]
    assert pair["difference"] == pytest.approx(0.5) and pair["verdict"] == NO_CLAIM
    assert claims["ResNet18 beats GoogLeNet"]["verdict"] == NOT_TESTED
