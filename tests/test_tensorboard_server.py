"""A real TensorBoard server over a finished 2-job sweep serves both runs, their scalars and hparams."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from garbage_lit.train import train

pytestmark = pytest.mark.slow  # whole sweeps or several processes

STARTUP_SECONDS = 90
LOAD_SECONDS = 60


def get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_tensorboard(logdir: Path, log_file: Path) -> tuple[subprocess.Popen, str]:
    """Start TensorBoard on a free loopback port (port 0); return the process and its base URL."""
    handle = log_file.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0",
         "--load_fast", "false", "--reload_interval", "1"],
        stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", log_file.read_text())
        if match:
            return process, f"http://127.0.0.1:{match.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"TensorBoard did not start within {STARTUP_SECONDS}s:\n{log_file.read_text()}")


def wait_for(fetch, ready, what: str):
    """Poll ``fetch()`` until ``ready(result)``; TensorBoard loads event files in the background."""
    deadline = time.monotonic() + LOAD_SECONDS
    while True:
        result = fetch()
        if ready(result) or time.monotonic() > deadline:
            assert ready(result), f"{what} not served within {LOAD_SECONDS}s: {result}"
            return result
        time.sleep(1)


def test_tensorboard_serves_both_runs_scalars_and_hparams_of_a_sweep(make_cfg, folder_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    for job, lr in enumerate((0.003, 0.01)):  # the two jobs of `-m lr=0.003,0.01`, one folder each
        train(make_cfg("data=folder", f"data.root={folder_dataset}", f"lr={lr}", output_dir=sweep / str(job)))

    process, url = start_tensorboard(sweep, tmp_path / "tensorboard.log")
    try:
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
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
