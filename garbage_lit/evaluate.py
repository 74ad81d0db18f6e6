"""Evaluate a trained checkpoint on a labelled dataset; write the metrics to a folder and print them.

    python -m garbage_lit.evaluate ckpt=outputs/<run>/checkpoints/model.ckpt data=folder data.root=/path/to/data
    python -m garbage_lit.evaluate ckpt=[a/checkpoints/model.ckpt,b/checkpoints/model.ckpt] ...  # an ensemble

Flip averaging and the test-time size are the checkpoint's unless ``flip_tta=``, ``image_size=`` or ``resize_size=``
say otherwise (:func:`~garbage_lit.models.loading.load_for_inference`).

The run folder gets ``evaluation.json`` (accuracy, macro recall and F1, per-class precision / recall /
F1, confusion matrix, most-confused pairs, expected calibration error before and after the model's temperature,
accuracy at each "unsure" threshold), ``per_class.csv``, ``confusion_matrix.png``, ``gallery.png`` (the most
confident mistakes and least confident correct answers; ``gradcam=true`` adds Grad-CAM heat maps),
``reliability.png``, ``coverage.png`` and ``coverage.csv`` (accuracy against coverage, to pick ``predict``'s
threshold). When the model's classes have waste bins (garbage_classify's groups, the ``data.groups`` the model
was trained with, or ``data.groups`` given here) it also reports bin accuracy and per-bin recall.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_confusion_matrix

from garbage_lit.config import CONFIG_DIR
from garbage_lit.data.datasets import ImageDataset
from garbage_lit.data.groups import class_bins
from garbage_lit.data.index import DataIndex, index_settings
from garbage_lit.data.samples import Sample
from garbage_lit.errors import ConfigError, DataError
from garbage_lit.insight.confusion import confusion_figure
from garbage_lit.insight.coverage import COVERAGE_COLUMNS, coverage_table
from garbage_lit.insight.figures import insight_pictures
from garbage_lit.insight.gallery import gallery_indices
from garbage_lit.insight.gradcam import gradcam_overlays
from garbage_lit.models.calibration import calibration_metrics
from garbage_lit.models.loading import (
    checkpoint_paths,
    eval_transform,
    inference_trainer,
    load_for_inference,
    preprocessing_of,
)
from garbage_lit.models.metrics import accuracy_interval, bin_metrics, per_class_table, summary_metrics
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.records.folder import (
    ACC,
    BIN_ACC,
    BIN_RECALL,
    COVERAGE_TABLE,
    ECE,
    ECE_RAW,
    F1,
    RECALL,
    TEMPERATURE,
    metric_key,
)
from garbage_lit.records.tables import write_csv
from garbage_lit.run.commands import cli as command_line
from garbage_lit.run.commands import one_line_errors
from garbage_lit.run.launch import start_command

log = logging.getLogger(__name__)

register_resolvers()

SPLITS = ("all", "train", "val", "test")
REPORT_NAME = "evaluation.json"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` (one checkpoint or a list: their averaged probabilities) on ``cfg.data`` (``cfg.split``
    of it); return and write the report."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not known; choose one of {', '.join(SPLITS)}")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = load_for_inference(cfg.ckpt, cfg.flip_tta, cfg.image_size, cfg.resize_size)
    if cfg.gradcam and len(model.models) > 1:
        raise ConfigError("gradcam=true draws one model's heat maps; give one checkpoint in ckpt= (or gradcam=false)")
    groups = cfg.data.get("groups")
    # Bins belong to the model's classes (the data may hold only some of them), so the data module gets none.
    bins = class_bins(model.class_names, groups) if groups is not None else model.class_bins
    index = DataIndex.from_settings(cfg.data, groups=None, cache_dir=cfg.cache.dir,
                                    scan_cache=cfg.cache.scan).build(training=False)
    samples = index.scan.samples if cfg.split == "all" else index.splits[cfg.split]
    if not samples:
        raise DataError(f"split={cfg.split} of {index.root} holds no images; use split=all")
    to_model = map_labels(index.class_names, [s.label for s in samples], model.class_names)
    samples = [Sample(s.path, to_model[s.label], s.sha256) for s in samples]

    loader = DataLoader(ImageDataset(samples, eval_transform(model)), batch_size=cfg.batch_size,
                        num_workers=cfg.num_workers)
    scores = torch.cat(inference_trainer(output_dir).predict(model, dataloaders=loader))
    probs = model.probabilities(scores)
    targets = torch.tensor([s.label for s in samples])
    report = classification_report(probs, targets, model.class_names, cfg.top_confused, cfg.split, bins)
    checkpoints = [str(path.resolve()) for path in checkpoint_paths(cfg.ckpt)]
    report = {"checkpoint": checkpoints[0] if len(checkpoints) == 1 else checkpoints, "data": str(index.root),
              "layout": index.layout, "split": cfg.split,
              "inference": {**preprocessing_of(model), "flip_tta": model.hparams.flip_tta}, **report,
              **calibration_metrics(scores, targets, model.temperature, cfg.split),
              "coverage": coverage_table(probs, targets),
              "config": resolved_config(cfg)}
    _write(output_dir, report, model.class_names)
    paths = [s.path for s in samples]
    overlays = None
    if cfg.gradcam:  # heat maps of the predicted class, for the photos the gallery shows
        shown = gallery_indices(probs, targets, cfg.gallery_size)
        pictures = gradcam_overlays(model.models[0], [paths[i] for i in shown], [int(probs[i].argmax()) for i in shown],
                                    preprocessing_of(model), cfg.batch_size)
        overlays = dict(zip(shown, pictures))
    pictures = insight_pictures(scores, probs, targets, paths, model.class_names, bins, model.temperature,
                                cfg.gallery_size, cfg.split, overlays)
    for file, png in pictures.items():
        (output_dir / file).write_bytes(png)
    print(format_report(report))
    log.info("evaluation written to %s", output_dir)
    return report


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The command's config as it ran, resolved; of ``data`` the keys the data index took (the others, a training
    config's loader settings, refer to a model config this command does not have)."""
    rest = copy.deepcopy(cfg)
    with open_dict(rest):
        del rest["data"]
    return {**OmegaConf.to_container(rest, resolve=True), "data": index_settings(cfg.data)}


def map_labels(dataset_classes: Sequence[str], used_labels: Sequence[int],
               model_classes: Sequence[str]) -> dict[int, int]:
    """Dataset label -> model class index, matched by class name; every class with images must be known.

    A subset is fine (e.g. the 15-class garbage_classify sample against a 40-class model).
    """
    index = {name: i for i, name in enumerate(model_classes)}
    used = sorted(set(used_labels))
    unknown = [dataset_classes[label] for label in used if dataset_classes[label] not in index]
    if unknown:
        raise DataError(f"the dataset's classes {unknown} are not among the checkpoint's classes "
                         f"{list(model_classes)}; the dataset has {[dataset_classes[i] for i in used]}. "
                         f"Evaluate on data with the model's class names (folder names, or the "
                         f"garbage_classify rule file)")
    return {label: index[dataset_classes[label]] for label in used}


def classification_report(probs: torch.Tensor, targets: torch.Tensor, class_names: Sequence[str],
                          top_confused: int = 10, split: str = "all",
                          bins: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro recall/F1 (over the classes present in ``targets``), per-class metrics, confusion.

    The summary metrics are keyed ``<split>/acc``, ``<split>/recall``, ``<split>/f1``, as in metrics.json and
    with training's definitions (:mod:`garbage_lit.models.metrics`); with ``bins`` (each class's waste bin) also
    ``<split>/bin_acc`` and ``<split>/bin_recall/<bin>``. Macro averages skip classes with no images in the
    evaluated data, so a subset of the model's classes is not penalised for classes it cannot contain.
    """
    num_classes = len(class_names)
    summary = summary_metrics(num_classes)(probs, targets)
    confusion = multiclass_confusion_matrix(probs.argmax(dim=1), targets, num_classes)
    per_class = per_class_table(confusion, class_names)
    present = [row["f1"] for row in per_class if row["support"]]
    return {
        "images": int(len(targets)),
        **{metric_key(split, name): value.item() for name, value in summary.items()},  # acc, recall, ... (one set)
        "acc_interval_95": list(accuracy_interval(int(confusion.diagonal().sum()), len(targets))),
        metric_key(split, F1): sum(present) / len(present),
        **(bin_metrics(confusion, bins, split) if bins else {}),
        "classes_evaluated": len(present),
        "per_class": per_class,
        "most_confused": most_confused_pairs(confusion, class_names, top_confused),
        "confusion_matrix": confusion.tolist(),
    }


def most_confused_pairs(confusion: torch.Tensor, class_names: Sequence[str], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` largest off-diagonal cells: (true class, predicted as, count, share of the true class)."""
    errors = confusion.clone()
    errors.fill_diagonal_(0)
    counts, flat = errors.flatten().sort(descending=True, stable=True)
    support = confusion.sum(dim=1)
    pairs = []
    for count, index in zip(counts[:top].tolist(), flat[:top].tolist()):
        if count == 0:
            break
        true, pred = divmod(index, len(class_names))
        pairs.append({"true": class_names[true], "predicted": class_names[pred], "count": count,
                      "share_of_true": count / support[true].item()})
    return pairs


def _write(output_dir: Path, report: dict[str, Any], class_names: list[str]) -> None:
    write_json_atomic(output_dir / REPORT_NAME, report)
    write_csv(output_dir / COVERAGE_TABLE, report["coverage"], COVERAGE_COLUMNS)
    write_csv(output_dir / "per_class.csv", report["per_class"])  # class, support, predicted, precision, recall, f1
    # Only the classes that occur (as truth or prediction) keep a 40-class matrix readable on a subset.
    shown = [i for i, name in enumerate(class_names) if name in {row["class"] for row in report["per_class"]}]
    matrix = [[report["confusion_matrix"][r][c] for c in shown] for r in shown]
    # Numbered, when names cannot be drawn, by the model's class order: the same numbers as the training run's pictures.
    confusion_figure(matrix, class_names, shown).savefig(output_dir / "confusion_matrix.png", dpi=120)


def format_report(report: dict[str, Any]) -> str:
    """The report as console text: summary, per-class table, most-confused pairs."""
    width = max(len(row["class"]) for row in report["per_class"])
    split = report["split"]
    checkpoint = report["checkpoint"]
    model = checkpoint if isinstance(checkpoint, str) else f"the ensemble of {', '.join(checkpoint)}"
    lines = [f"{model} on {report['data']} ({report['split']}, {report['images']} images, "
             f"{report['classes_evaluated']} classes{_inference_said(report.get('inference'))})",
             f"accuracy {report[metric_key(split, ACC)]:.4f}{_interval_said(report.get('acc_interval_95'))}   "
             f"macro recall {report[metric_key(split, RECALL)]:.4f}   "
             f"macro F1 {report[metric_key(split, F1)]:.4f}",
             *_bin_lines(report, split), *_calibration_lines(report, split), "",
             f"{'class':<{width}}  support  predicted  precision  recall      f1"]
    lines += [f"{row['class']:<{width}}  {row['support']:>7}  {row['predicted']:>9}  {row['precision']:>9.3f}  "
              f"{row['recall']:>6.3f}  {row['f1']:>6.3f}" for row in report["per_class"]]
    if report["most_confused"]:
        lines += ["", "most confused (true -> predicted: count, share of true class)"]
        lines += [f"  {p['true']} -> {p['predicted']}: {p['count']} ({p['share_of_true']:.1%})"
                  for p in report["most_confused"]]
    if report.get("coverage"):
        lines += ["", "predict threshold=t: answered share (coverage) and accuracy on it; the rest are unsure"]
        lines += [f"  t={row['threshold']:<4g}  coverage {row['coverage']:.3f}  accuracy "
                  + (f"{row['accuracy']:.4f}" if row["accuracy"] is not None else "-") for row in report["coverage"]]
    return "\n".join(lines)


def _interval_said(interval: list[float] | None) -> str:
    return f" (95% interval {interval[0]:.3f}-{interval[1]:.3f})" if interval else ""


def _inference_said(inference: dict[str, Any] | None) -> str:
    """``; 260 px crop of 297, flip-averaged``: how the model was used, when the report says."""
    if not inference:
        return ""
    return (f"; {inference['image_size']} px crop of {inference['resize_size']}"
            + (", flip-averaged" if inference["flip_tta"] else ""))


def _calibration_lines(report: dict[str, Any], split: str) -> list[str]:
    """``expected calibration error 0.0384 (temperature 0.779; 0.0484 before scaling)`` when the report has it."""
    if metric_key(split, ECE) not in report:
        return []
    ece = f"expected calibration error {report[metric_key(split, ECE)]:.4f}"
    if report.get(TEMPERATURE) is None:
        return [ece + " (no temperature: the model was trained without a validation split)"]
    return [ece + f" (temperature {report[TEMPERATURE]:.3f}; {report[metric_key(split, ECE_RAW)]:.4f} before "
                  f"scaling)"]


def _bin_lines(report: dict[str, Any], split: str) -> list[str]:
    """``bin accuracy 0.93   bin recall: other 0.50, recyclable 0.99`` when the report has bin metrics."""
    if metric_key(split, BIN_ACC) not in report:
        return []
    prefix = metric_key(split, BIN_RECALL) + "/"
    recalls = ", ".join(f"{key[len(prefix):]} {value:.4f}" for key, value in report.items() if key.startswith(prefix))
    return [f"bin accuracy {report[metric_key(split, BIN_ACC)]:.4f}   bin recall: {recalls}"]


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> float:
    with one_line_errors():
        start_command(cfg)
        return evaluate(cfg)[metric_key(cfg.split, ACC)]


def cli() -> None:
    """The command line (``garbage-lit-evaluate``, ``python -m garbage_lit.evaluate``)."""
    command_line(main, "evaluate")


if __name__ == "__main__":
    cli()
