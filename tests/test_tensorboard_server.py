"""A real TensorBoard server over a finished 2-job sweep serves both runs, their scalars and hparams."""

from __future__ import annotations

import pytest

from garbage_lit.train import train

from helpers.tensorboard import get_json, tensorboard_server, wait_for

pytestmark = pytest.mark.slow  # whole sweeps or several processes


def test_tensorboard_serves_both_runs_scalars_and_hparams_of_a_sweep(make_cfg, folder_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    for job, lr in enumerate((0.003, 0.01)):  # the two jobs of `-m lr=0.003,0.01`, one folder each
        train(make_cfg("data=folder", f"data.root={folder_dataset}", f"lr={lr}", output_dir=sweep / str(job)))

    with tensorboard_server(sweep, tmp_path / "tensorboard.log") as url:
        runs = wait_for(lambda: get_json(f"{url}/data/runs"), lambda r: len(r) >= 2, "runs")
        assert sorted(runs) == ["0/tensorboard", "1/tensorboard"]

        tags = wait_for(lambda: get_json(f"{url}/data/plugin/scalars/tags"),
                        lambda t: all("test/acc" in t.get(run, {}) for run in runs), "scalar tags")
        for run in runs:
            assert {"train/loss", "train/acc", "test/loss", "test/acc", "test/recall"} <= set(tags[run])
            points = get_json(f"{url}/data/plugin/scalars/scalars?run={run}&tag=test/acc")
            # one epoch, then the final evaluation of the chosen checkpoint: [wall_time, step, value]
            assert len(points) == 2 and points[0][2] == points[1][2] and 0.0 <= points[1][2] <= 1.0

        experiment = get_json(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {info["name"] for info in experiment["hparamInfos"]}
        assert {"model", "optimizer", "lr", "batch_size", "seed", "weights"} <= hparams
        metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
        assert {"test/acc", "test/recall"} <= metrics
        groups = get_json(f"{url}/data/plugin/hparams/session_groups",
                          {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                           "colParams": [], "startIndex": 0, "sliceSize": 10})
        assert sorted(g["hparams"]["lr"] for g in groups["sessionGroups"]) == [0.003, 0.01]
