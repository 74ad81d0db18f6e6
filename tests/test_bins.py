"""Waste bins: the class -> bin mapping (data.groups, garbage_classify names), bin metrics, runs that record them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from garbage_lit.config import CONFIG_DIR
from garbage_lit.data.groups import class_bins
from garbage_lit.errors import DataError
from garbage_lit.evaluate import classification_report, format_report
from garbage_lit.models.metrics import accuracy_interval, bin_metrics
from garbage_lit.records.folder import PREDICTIONS_FILE, TEST_BIN_ACC, bin_recall_key, read_metrics

TRASHNET = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]
TRASHNET_BINS = ["recyclable"] * 5 + ["other"]


def test_garbage_classify_names_give_their_group_as_bin():
    names = ["其他垃圾/烟蒂", "可回收物/易拉罐", "有害垃圾/干电池", "厨余垃圾/菜叶根"]
    assert class_bins(names) == ["other", "recyclable", "hazardous", "kitchen"]
    assert class_bins(["glass", "metal"]) is None            # no groups, no mapping: no bins
    assert class_bins(["可回收物/易拉罐", "group/class1"]) is None


def test_mapping_inline_yaml_and_csv(tmp_path):
    mapping = dict(zip(TRASHNET, TRASHNET_BINS))
    assert class_bins(TRASHNET, mapping) == TRASHNET_BINS
    assert class_bins(TRASHNET, OmegaConf.create(mapping)) == TRASHNET_BINS
    yaml_file = tmp_path / "bins.yaml"
    yaml_file.write_text("\n".join(f"{k}: {v}" for k, v in mapping.items()))
    assert class_bins(TRASHNET, str(yaml_file)) == TRASHNET_BINS
    csv_file = tmp_path / "bins.csv"
    csv_file.write_text("class,bin\n" + "".join(f"{k},{v}\n" for k, v in mapping.items()))
    assert class_bins(TRASHNET, csv_file) == TRASHNET_BINS


def test_the_bundled_trashnet_mapping_is_one_override():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+data/groups=trashnet"])
    assert class_bins(TRASHNET, cfg.data.groups) == TRASHNET_BINS


def test_a_mapping_must_name_real_classes_and_cover_them_all(tmp_path):
    with pytest.raises(DataError, match=r"maps \['bottle'\], which are not classes"):
        class_bins(["glass", "metal"], {"glass": "recyclable", "metal": "recyclable", "bottle": "recyclable"})
    with pytest.raises(DataError, match=r"gives no bin for the classes \['metal'\]"):
        class_bins(["glass", "metal"], {"glass": "recyclable"})
    with pytest.raises(DataError, match="no such file"):
        class_bins(["glass"], str(tmp_path / "missing.yaml"))
    bad_csv = tmp_path / "bins.csv"
    bad_csv.write_text("name,group\nglass,recyclable\n")
    with pytest.raises(DataError, match="expected class,bin"):
        class_bins(["glass"], bad_csv)


def test_bin_metrics_from_a_confusion_matrix():
    # classes: battery (hazardous), can and bottle (recyclable); rows are true classes
    confusion = torch.tensor([[3, 1, 0],    # battery: 3 right, 1 taken for a can (wrong bin)
                              [0, 2, 2],    # can: 2 right, 2 taken for a bottle (right bin)
                              [0, 1, 1]])   # bottle
    metrics = bin_metrics(confusion, ["hazardous", "recyclable", "recyclable"], "test")
    assert metrics[TEST_BIN_ACC] == pytest.approx(9 / 10)
    assert metrics[bin_recall_key("test", "hazardous")] == pytest.approx(3 / 4)
    assert metrics[bin_recall_key("test", "recyclable")] == pytest.approx(1.0)
    assert "test/bin_recall/kitchen" not in metrics       # a bin without images has no recall


def test_evaluate_report_shows_bins():
    probs = torch.eye(3)[[0, 1, 2, 2]]
    report = classification_report(probs, torch.tensor([0, 1, 1, 2]), ["battery", "can", "bottle"],
                                   bins=["hazardous", "recyclable", "recyclable"], split="test")
    assert report["test/acc"] == 0.75 and report[TEST_BIN_ACC] == 1.0
    report.update(checkpoint="x.ckpt", data="d", split="test")
    assert "bin accuracy 1.0000   bin recall: hazardous 1.0000, recyclable 1.0000" in format_report(report)


@pytest.mark.slow
def test_a_run_with_groups_records_bins_per_epoch_final_and_per_image(make_cfg, folder_dataset, tmp_path):
    from garbage_lit.train import train

    cfg = make_cfg("data=folder", f"data.root={folder_dataset}", "epochs=2",
                   "data.groups={glass: recyclable, metal: recyclable, paper: other}")
    final = train(cfg)
    run = Path(cfg.paths.output_dir)
    metrics = read_metrics(run)
    for row in metrics["epochs"]:
        assert {TEST_BIN_ACC, "test/bin_recall/other", "test/bin_recall/recyclable"} <= set(row)
    assert metrics["final"][TEST_BIN_ACC] == final[TEST_BIN_ACC]
    assert final[TEST_BIN_ACC] >= final["test/acc"]  # a right class is always a right bin
    with (run / PREDICTIONS_FILE).open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["data"]["split_sizes"]["test"] == 6
    assert {r["file"].split("/")[0] for r in rows} == {"glass", "metal", "paper"}
    accuracy = sum(r["label"] == r["predicted"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(final["test/acc"])
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and any(b"test/bin_acc" in e.read_bytes() for e in events)
    assert json.loads((run / "metrics.json").read_text())["config"]["data"]["groups"]["paper"] == "other"


def test_evaluate_reports_a_95_percent_interval_of_its_accuracy():
    assert accuracy_interval(475, 505) == pytest.approx((0.91646, 0.95807), abs=1e-5)  # Wilson score, z 1.96
    assert accuracy_interval(10, 10) == pytest.approx((0.72246, 1.0), abs=1e-5)
    report = classification_report(torch.eye(3)[[0, 1, 2, 2]], torch.tensor([0, 1, 1, 2]), ["a", "b", "c"],
                                   split="test")
    assert report["acc_interval_95"] == pytest.approx(list(accuracy_interval(3, 4)))
    report.update(checkpoint="x.ckpt", data="d", split="test")
    low, high = accuracy_interval(3, 4)
    assert f"accuracy 0.7500 (95% interval {low:.3f}-{high:.3f})" in format_report(report)
