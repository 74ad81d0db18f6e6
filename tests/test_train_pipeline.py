"""End-to-end: a composed config trains, evaluates and writes every promised output."""

from __future__ import annotations

import json

from garbage_lit.train import train

from helpers import TEST_ACC


def test_train_writes_metrics_manifest_checkpoints_and_tensorboard(make_cfg, folder_dataset, tmp_path):
    out = tmp_path / "run"
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "epochs=2", output_dir=out)
    result = train(cfg)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1]
    for row in metrics["epochs"]:
        for key in ("train/loss", "train/acc", "train/recall", "test/loss", "test/acc", "test/recall", "seconds"):
            assert isinstance(row[key], float), key
    assert metrics["weights_source"] == "none (random init)"
    assert metrics["final"][TEST_ACC] == result[TEST_ACC]
    assert set(metrics["final"]["per_class_acc"]) == {"glass", "metal", "paper"}
    assert sum(map(sum, metrics["final"]["confusion_matrix"])) == 6  # 20% of 3 x 10
    assert metrics["data"]["split_sizes"] == {"train": 24, "val": 0, "test": 6}
    assert (out / "split_manifest.csv").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "checkpoints" / "model.ckpt").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_testing_an_earlier_best_checkpoint_keeps_every_epoch_in_metrics_json(make_cfg, folder_dataset, tmp_path):
    out = tmp_path / "run"
    # mode=min on val/acc keeps epoch 0 as "best" (ties never replace it), so trainer.test loads an earlier checkpoint.
    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "data.val_ratio=0.25", "epochs=3",
                   "callbacks.model_checkpoint.mode=min", output_dir=out)
    result = train(cfg)

    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2]
    assert all("val/acc" in e for e in metrics["epochs"])
    assert metrics["best_epoch"] == result["epoch"] < 2
