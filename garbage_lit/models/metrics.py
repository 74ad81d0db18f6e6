"""The metrics of a classifier, one definition for training, the final test and ``evaluate``.

* :func:`summary_metrics`: accuracy and macro recall, the ``<split>/acc`` and ``<split>/recall`` of every split.
* :class:`SplitMetrics`: what one split measures over an epoch (loss, summary, confusion matrix).
* :func:`class_metrics`: what a confusion matrix adds: per-class accuracy, and bin accuracy and per-bin
  recall when the classes have waste bins (``<split>/bin_acc``, ``<split>/bin_recall/<bin>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassStatScores

from garbage_lit.records.folder import ACC, BIN_ACC, LOSS, PER_CLASS_ACC, RECALL, TEST, VAL, bin_recall_key, metric_key


class _PerClassCounts(MulticlassStatScores):
    """True positives and false negatives per class: the one state accuracy and macro recall are computed from.

    Both metrics below keep the same state, so a ``MetricCollection`` updates it once for the two (compute groups).
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, average=None, **kwargs)


class Accuracy(_PerClassCounts):
    """The share of images predicted right (micro accuracy)."""

    def compute(self) -> torch.Tensor:
        tp, _, _, fn = self._final_state()
        return tp.sum() / (tp + fn).sum()


class MacroRecall(_PerClassCounts):
    """Recall averaged over the classes that have images in the data (a class with none has no recall).

    On data holding every class this is torchmetrics' macro recall; on a subset of the model's classes
    (or a split a one-image class never reaches) the absent classes neither count as 0 nor as 1.
    """

    def compute(self) -> torch.Tensor:
        tp, _, _, fn = self._final_state()
        support = tp + fn
        present = support > 0
        return (tp[present] / support[present]).float().mean() if present.any() else torch.tensor(float("nan"))


def summary_metrics(num_classes: int) -> MetricCollection:
    """``acc`` (:class:`Accuracy`) and ``recall`` (:class:`MacroRecall`); clone it per split with its prefix.

    Inputs are logits and the data's labels (a bad label already fails the loss), so arguments are not re-validated.
    """
    return MetricCollection({ACC: Accuracy(num_classes, validate_args=False),
                             RECALL: MacroRecall(num_classes, validate_args=False)})


class SplitMetrics(nn.Module):
    """One split's epoch: the mean loss (weighted by batch size; a NaN step keeps it NaN), accuracy and macro recall,
    and for evaluated splits the confusion matrix behind per-class and bin metrics.

    ``metrics()`` are torchmetrics objects keyed ``<split>/<name>``, to log as they are: Lightning computes, syncs
    and resets them at the epoch's end.
    """

    def __init__(self, split: str, num_classes: int, confusion: bool = True) -> None:
        super().__init__()
        self.split = split
        self.loss = MeanMetric(nan_strategy=float("nan"))
        self.summary = summary_metrics(num_classes).clone(prefix=f"{split}/")
        self.confusion = MulticlassConfusionMatrix(num_classes, validate_args=False) if confusion else None
        self._deferred: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.loss.update(loss.detach(), len(targets))
        self.summary.update(logits.detach(), targets)
        if self.confusion is not None:
            self.confusion.update(logits.detach(), targets)

    def defer(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """:meth:`update` later, all deferred batches at once (at :meth:`flush`): a training step keeps three small
        tensors instead of paying torchmetrics' per-call work, a sixth of a step on cached features."""
        self._deferred.append((loss.detach().reshape(1), logits.detach().argmax(dim=-1), targets.detach()))

    def flush(self) -> None:
        """Count the deferred batches (class indices count as their logits' most likely class)."""
        if not self._deferred:
            return
        losses, predicted, targets = (torch.cat(parts) for parts in zip(*self._deferred))
        sizes = torch.tensor([len(t) for _, _, t in self._deferred], dtype=losses.dtype, device=losses.device)
        self._deferred.clear()
        self.loss.update(losses, sizes)
        self.summary.update(predicted, targets)
        if self.confusion is not None:
            self.confusion.update(predicted, targets)

    def metrics(self) -> dict[str, object]:
        self.flush()
        return {metric_key(self.split, LOSS): self.loss, **self.summary}

    def running_state(self) -> dict[str, Any]:
        """The epoch so far: the counts accumulated (torchmetrics keep them out of ``state_dict``) and the batches
        still deferred, what a checkpoint written mid-epoch holds, so the resumed epoch counts every batch once and
        in the same order (its float sums bit for bit)."""
        return {"metrics": {name: dict(metric.metric_state) for name, metric in self.named_modules()
                            if isinstance(metric, Metric)},
                "deferred": [list(batch) for batch in self._deferred]}

    def load_running_state(self, state: dict[str, Any]) -> None:
        for name, metric in self.named_modules():
            for attr, value in state.get("metrics", {}).get(name, {}).items() if isinstance(metric, Metric) else ():
                setattr(metric, attr, [v.to(metric.device) for v in value] if isinstance(value, list)
                        else value.to(metric.device))
        self._deferred = [tuple(t.to(self.loss.device) for t in batch) for batch in state.get("deferred", [])]

    def confusion_matrix(self) -> torch.Tensor:
        """The epoch's confusion matrix (synced across processes); the state starts afresh."""
        matrix = self.confusion.compute()
        self.confusion.reset()
        return matrix


def accuracy_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of an accuracy of ``correct`` out of ``total`` images (z 1.96: 95%).

    It says how far a test set of this size lets an accuracy be trusted: 475 of 505 (0.941) is 0.916-0.958.
    """
    if total <= 0:
        return float("nan"), float("nan")
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * (share * (1 - share) / total + z * z / (4 * total * total)) ** 0.5
    return max(centre - half, 0.0), min(centre + half, 1.0)


def per_class_accuracy(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, float | None]:
    """Recall of each class from a confusion matrix (rows: true class); None for classes absent from the data."""
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    return {name: (correct[i] / support[i]).item() if support[i] else None for i, name in enumerate(class_names)}


def per_class_table(confusion: torch.Tensor, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Support, predicted count, precision, recall and F1 of each class that has images or predictions.

    From a confusion matrix (rows: true class); a ratio whose denominator is 0 is 0, as torchmetrics has it.
    """
    confusion = torch.as_tensor(confusion)
    support, predicted, correct = confusion.sum(dim=1), confusion.sum(dim=0), confusion.diagonal()
    rows = []
    for i, name in enumerate(class_names):
        if support[i] == 0 and predicted[i] == 0:
            continue
        precision = (correct[i] / predicted[i]).item() if predicted[i] else 0.0
        recall = (correct[i] / support[i]).item() if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "support": int(support[i]), "predicted": int(predicted[i]),
                     "precision": precision, "recall": recall, "f1": f1})
    return rows


def bin_metrics(confusion: torch.Tensor, bins: Sequence[str], split: str) -> dict[str, float]:
    """``<split>/bin_acc`` and ``<split>/bin_recall/<bin>`` from a class confusion matrix (rows: true class).

    A prediction counts for bin accuracy when its class is in the image's bin. A bin without images gets no recall.
    """
    names = list(dict.fromkeys(bins))  # in class order: garbage_classify's other, kitchen, recyclable, hazardous
    to_bin = torch.zeros(len(bins), len(names), dtype=torch.float64)
    to_bin[torch.arange(len(bins)), torch.tensor([names.index(b) for b in bins])] = 1.0
    binned = to_bin.T @ confusion.detach().cpu().to(torch.float64) @ to_bin  # true bin x predicted bin
    support = binned.sum(dim=1)
    metrics = {metric_key(split, BIN_ACC): (binned.trace() / binned.sum()).item() if binned.sum() else float("nan")}
    metrics.update({bin_recall_key(split, name): (binned[i, i] / support[i]).item()
                    for i, name in enumerate(names) if support[i]})
    return metrics


def class_metrics(confusion: torch.Tensor, class_names: Sequence[str], bins: Sequence[str] | None, split: str,
                  per_class: bool = True) -> dict[str, float]:
    """With ``bins``, bin metrics; with ``per_class``, ``<split>/per_class_acc/<class>`` of the classes with images."""
    accuracies = per_class_accuracy(confusion, class_names) if per_class else {}
    return {**{metric_key(split, f"{PER_CLASS_ACC}/{name}"): value for name, value in accuracies.items()
               if value is not None},
            **(bin_metrics(confusion, bins, split) if bins else {})}


def class_metric_keys(class_names: Sequence[str], bins: Sequence[str] | None,
                      splits: Sequence[str] = (VAL, TEST)) -> list[str]:
    """Every metric key a run logs that holds a class or bin name (``test/per_class_acc/<class>``,
    ``test/bin_recall/<bin>``), for the evaluated ``splits``: what trackers plan their names from before training."""
    bin_names = list(dict.fromkeys(bins)) if bins else []
    return [*(metric_key(split, f"{PER_CLASS_ACC}/{name}") for split in splits for name in class_names),
            *(bin_recall_key(split, name) for split in splits for name in bin_names)]
