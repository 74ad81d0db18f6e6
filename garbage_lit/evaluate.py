"""Evaluate a trained checkpoint on a labelled dataset; write the metrics to a folder and print them.

    python -m garbage_lit.evaluate ckpt=outputs/<run>/checkpoints/last.ckpt data=folder data.root=/path/to/data

The run folder gets ``evaluation.json`` (accuracy, macro recall and F1, per-class precision / recall /
F1, confusion matrix, most-confused pairs), ``per_class.csv`` and ``confusion_matrix.png``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import hydra
import matplotlib.pyplot as plt
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader

from garbage_lit.callbacks.metrics_json import write_json_atomic
from garbage_lit.config import register_resolvers
from garbage_lit.data.dataset import ImageDataset
from garbage_lit.data.scan import Sample
from garbage_lit.evaluation import classification_report, map_labels
from garbage_lit.inference import eval_transform, inference_trainer, load_classifier, preprocessing_of
from garbage_lit.plots import confusion_figure

log = logging.getLogger(__name__)

register_resolvers()

SPLITS = ("all", "train", "val", "test")
REPORT_NAME = "evaluation.json"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` on ``cfg.data`` (``cfg.split`` of it); return and write the report."""
    if cfg.split not in SPLITS:
        raise ValueError(f"split={cfg.split!r} is not known; choose one of {', '.join(SPLITS)}")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = load_classifier(cfg.ckpt)
    with open_dict(cfg):
        cfg.data.update(preprocessing_of(model))  # the data module records what the model expects
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    samples = datamodule.scan.samples if cfg.split == "all" else datamodule.splits[cfg.split]
    if not samples:
        raise ValueError(f"split={cfg.split} of {datamodule.root} holds no images; use split=all")
    to_model = map_labels(datamodule.class_names, [s.label for s in samples], model.class_names)
    samples = [Sample(s.path, to_model[s.label], s.sha256) for s in samples]

    loader = DataLoader(ImageDataset(samples, eval_transform(model)), batch_size=cfg.batch_size,
                        num_workers=cfg.num_workers)
    probs = torch.cat(inference_trainer(output_dir).predict(model, dataloaders=loader))
    targets = torch.tensor([s.label for s in samples])
    report = classification_report(probs, targets, model.class_names, cfg.top_confused)
    report = {"checkpoint": str(Path(cfg.ckpt).resolve()), "data": str(datamodule.root),
              "layout": datamodule.hparams.layout, "split": cfg.split, **report,
              "config": OmegaConf.to_container(cfg, resolve=True)}
    _write(output_dir, report, model.class_names)
    print(format_report(report))
    log.info("evaluation written to %s", output_dir)
    return report


def _write(output_dir: Path, report: dict[str, Any], class_names: list[str]) -> None:
    write_json_atomic(output_dir / REPORT_NAME, report)
    with (output_dir / "per_class.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["class", "support", "predicted", "precision", "recall", "f1"])
        writer.writeheader()
        writer.writerows(report["per_class"])
    # Only the classes that occur (as truth or prediction) keep a 40-class matrix readable on a subset.
    shown = [i for i, name in enumerate(class_names) if name in {row["class"] for row in report["per_class"]}]
    matrix = [[report["confusion_matrix"][r][c] for c in shown] for r in shown]
    figure = confusion_figure(matrix, [class_names[i] for i in shown])  # picks an installed CJK font itself
    figure.savefig(output_dir / "confusion_matrix.png", dpi=120)
    plt.close(figure)


def format_report(report: dict[str, Any]) -> str:
    """The report as console text: summary, per-class table, most-confused pairs."""
    width = max(len(row["class"]) for row in report["per_class"])
    lines = [f"{report['checkpoint']} on {report['data']} ({report['split']}, {report['images']} images, "
             f"{report['classes_evaluated']} classes)",
             f"accuracy {report['accuracy']:.4f}   macro recall {report['macro_recall']:.4f}   "
             f"macro F1 {report['macro_f1']:.4f}", "",
             f"{'class':<{width}}  support  predicted  precision  recall      f1"]
    lines += [f"{row['class']:<{width}}  {row['support']:>7}  {row['predicted']:>9}  {row['precision']:>9.3f}  "
              f"{row['recall']:>6.3f}  {row['f1']:>6.3f}" for row in report["per_class"]]
    if report["most_confused"]:
        lines += ["", "most confused (true -> predicted: count, share of true class)"]
        lines += [f"  {p['true']} -> {p['predicted']}: {p['count']} ({p['share_of_true']:.1%})"
                  for p in report["most_confused"]]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="pkg://garbage_lit.conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["accuracy"]


if __name__ == "__main__":
    main()
