"""Metrics of a trained classifier on a labelled dataset: summary, per class, confusion, most-confused pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def map_labels(dataset_classes: Sequence[str], used_labels: Sequence[int], model_classes: Sequence[str]) -> dict[int, int]:
    """Dataset label -> model class index, matched by class name; every class with images must be known.

    A subset is fine (e.g. the 15-class garbage_classify sample against a 40-class model).
    """
    index = {name: i for i, name in enumerate(model_classes)}
    used = sorted(set(used_labels))
    unknown = [dataset_classes[label] for label in used if dataset_classes[label] not in index]
    if unknown:
        raise ValueError(f"the dataset's classes {unknown} are not among the checkpoint's classes "
                         f"{list(model_classes)}; the dataset has {[dataset_classes[i] for i in used]}. "
                         f"Evaluate on data with the model's class names (folder names, or the "
                         f"garbage_classify rule file)")
    return {label: index[dataset_classes[label]] for label in used}


def classification_report(probs: torch.Tensor, targets: torch.Tensor, class_names: Sequence[str],
                          top_confused: int = 10) -> dict[str, Any]:
    """Accuracy, macro recall/F1 (over the classes present in ``targets``), per-class metrics, confusion.

    Macro averages skip classes with no images in the evaluated data, so a subset of the model's
    classes is not penalised for classes it cannot contain.
    """
    num_classes = len(class_names)
    preds = probs.argmax(dim=1)
    per_class = {
        "precision": multiclass_precision(preds, targets, num_classes, average="none"),
        "recall": multiclass_recall(preds, targets, num_classes, average="none"),
        "f1": multiclass_f1_score(preds, targets, num_classes, average="none"),
    }
    support = torch.bincount(targets, minlength=num_classes)
    predicted = torch.bincount(preds, minlength=num_classes)
    present = support > 0
    confusion = multiclass_confusion_matrix(preds, targets, num_classes)
    return {
        "images": int(len(targets)),
        "accuracy": multiclass_accuracy(preds, targets, num_classes, average="micro").item(),
        "macro_recall": per_class["recall"][present].mean().item(),
        "macro_f1": per_class["f1"][present].mean().item(),
        "classes_evaluated": int(present.sum()),
        "per_class": [
            {"class": name, "support": int(support[i]), "predicted": int(predicted[i]),
             **{metric: values[i].item() for metric, values in per_class.items()}}
            for i, name in enumerate(class_names) if support[i] > 0 or predicted[i] > 0
        ],
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
