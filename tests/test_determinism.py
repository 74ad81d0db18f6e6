"""Same config and seed on CPU: identical per-epoch numbers in metrics.json."""

from __future__ import annotations

import json

from garbage_lit.train import train


def test_two_runs_with_the_same_seed_give_identical_epochs(make_cfg, folder_dataset, tmp_path):
    histories = []
    for name in ("first", "second"):
        out = tmp_path / name
        train(make_cfg("data=folder", f"data.root={folder_dataset}", "epochs=2", "data.rotation_degrees=30",
                       output_dir=out))
        epochs = json.loads((out / "metrics.json").read_text())["epochs"]
        histories.append([{k: v for k, v in row.items() if k != "seconds"} for row in epochs])
    assert len(histories[0]) == 2 and histories[0][0]["train/loss"] > 0
    assert histories[0] == histories[1]
