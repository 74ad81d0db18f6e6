"""Bins: the waste bin each class belongs to (garbage_classify's four groups, or a ``data.groups`` mapping).

garbage_classify class names are ``group/item`` and their group is the bin (其他垃圾 other, 厨余垃圾 kitchen,
可回收物 recyclable, 有害垃圾 hazardous). Any other dataset gets bins from ``data.groups``: a class -> bin
mapping given inline, as a YAML file (``class: bin``) or as a CSV file (columns ``class,bin``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import yaml

from garbage_lit.data.scan import DataError
from garbage_lit.run.folder import BIN_ACC, bin_recall_key, metric_key

GROUPS_EN = {"其他垃圾": "other", "厨余垃圾": "kitchen", "可回收物": "recyclable", "有害垃圾": "hazardous"}
BIN_COLUMNS = ("class", "bin")  # the header of a CSV mapping


def garbage_group(class_name: str) -> tuple[str, str] | None:
    """``("可回收物", "recyclable")`` for ``"可回收物/易拉罐"``; None for names without a known group."""
    group, separator, _ = class_name.partition("/")
    if separator and group in GROUPS_EN:
        return group, GROUPS_EN[group]
    return None


def class_bins(class_names: Sequence[str], groups: str | Path | Mapping[str, str] | None = None) -> list[str] | None:
    """The bin of every class, in class order; None when the classes have no bins.

    With ``groups`` (a mapping, or a YAML / CSV file of one) every class must be mapped and every mapped
    class must exist. Without it, garbage_classify names (``group/item``) give their group's English name
    when every class has a known group.
    """
    if groups is None:
        found = [garbage_group(name) for name in class_names]
        return [group[1] for group in found] if class_names and all(found) else None
    mapping, source = _read_mapping(groups)
    unknown = [name for name in mapping if name not in class_names]
    if unknown:
        raise DataError(f"data.groups ({source}) maps {unknown}, which are not classes of this dataset; its classes "
                        f"are {list(class_names)}. Fix the class names in the mapping or remove those entries")
    unmapped = [name for name in class_names if name not in mapping]
    if unmapped:
        raise DataError(f"data.groups ({source}) gives no bin for the classes {unmapped}; add a bin for each "
                        f"(e.g. `{unmapped[0]}: other`)")
    return [str(mapping[name]) for name in class_names]


def bin_names(bins: Sequence[str]) -> list[str]:
    """The distinct bins, garbage_classify's four in their usual order first, others as they first appear."""
    known = [b for b in GROUPS_EN.values() if b in bins]
    return known + [b for b in dict.fromkeys(bins) if b not in known]


def _read_mapping(groups: str | Path | Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The class -> bin mapping and where it came from (for error messages)."""
    if isinstance(groups, Mapping):
        return {str(k): str(v) for k, v in groups.items()}, "inline mapping"
    path = Path(groups).expanduser()
    if not path.is_file():
        raise DataError(f"data.groups={groups}: no such file; give a YAML (class: bin) or CSV (class,bin) file, "
                        f"or null for no bins")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != BIN_COLUMNS:
                raise DataError(f"data.groups={path}: the CSV header is {reader.fieldnames}, expected "
                                f"{','.join(BIN_COLUMNS)}")
            return {row["class"]: row["bin"] for row in reader}, str(path)
    mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(mapping, dict) or any(isinstance(v, (dict, list)) or v is None for v in mapping.values()):
        raise DataError(f"data.groups={path}: expected a YAML mapping of class name to bin name "
                        f"(e.g. `glass: recyclable`)")
    return {str(k): str(v) for k, v in mapping.items()}, str(path)


def bin_metrics(confusion: torch.Tensor, bins: Sequence[str], split: str) -> dict[str, float]:
    """``<split>/bin_acc`` and ``<split>/bin_recall/<bin>`` from a class confusion matrix (rows: true class).

    A bin without images in the data gets no recall.
    """
    names = bin_names(bins)
    to_bin = torch.zeros(len(bins), len(names), dtype=torch.float64)
    to_bin[torch.arange(len(bins)), torch.tensor([names.index(b) for b in bins])] = 1.0
    binned = to_bin.T @ confusion.detach().cpu().to(torch.float64) @ to_bin  # true bin x predicted bin
    support = binned.sum(dim=1)
    metrics = {metric_key(split, BIN_ACC): (binned.trace() / binned.sum()).item() if binned.sum() else float("nan")}
    metrics.update({bin_recall_key(split, name): (binned[i, i] / support[i]).item()
                    for i, name in enumerate(names) if support[i]})
    return metrics
