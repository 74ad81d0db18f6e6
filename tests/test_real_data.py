"""The real datasets beside the checkout (../shared/data): class counts and short training runs."""

from __future__ import annotations

import json

import pytest

from garbage_lit.data.scan import scan_dataset
from garbage_lit.train import train

from helpers.data import require_shared

# cache.features=false: two batches of images through the backbone, not a feature cache of every image
SHORT = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
         "cache.features=false"]


@pytest.mark.slow
def test_trashnet_folder_layout_trains_with_six_classes(make_cfg, tmp_path):
    root = require_shared("trashnet")
    cfg = make_cfg("data=folder", f"data.root={root}", *SHORT, output_dir=tmp_path / "run")
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["class_names"] == ["cardboard", "glass", "metal", "paper", "plastic", "trash"]
    assert sum(metrics["data"]["split_sizes"].values()) == 2527
    assert metrics["data"]["split_sizes"]["test"] == round(0.2 * 403) + round(0.2 * 501) + round(0.2 * 410) \
        + round(0.2 * 594) + round(0.2 * 482) + round(0.2 * 137)


def test_garbage_classify_sample_has_all_forty_rule_classes(make_cfg, tmp_path):
    root = require_shared("garbage_classify_sample")
    scan = scan_dataset(root, "garbage_classify")
    assert scan.num_classes == 40 and scan.class_names[0] == "其他垃圾/一次性快餐盒"
    assert len(scan.samples) == 103 and not scan.problems
    assert len({s.label for s in scan.samples}) == 15

    cfg = make_cfg("data=garbage_classify", f"data.root={root}", *SHORT, output_dir=tmp_path / "run")
    result = train(cfg)
    assert len(result["per_class_acc"]) == 40
    # Classes with no test image have no accuracy rather than a misleading zero.
    assert sum(v is not None for v in result["per_class_acc"].values()) <= 15
