"""Bins: the waste bin each class belongs to (garbage_classify's four groups, or a ``data.groups`` mapping).

garbage_classify class names are ``group/item`` and their group is the bin (其他垃圾 other, 厨余垃圾 kitchen,
可回收物 recyclable, 有害垃圾 hazardous). Any other dataset gets bins from ``data.groups``: a class -> bin
mapping given inline, as a YAML file (``class: bin``) or as a CSV file (columns ``class,bin``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from garbage_lit.errors import DataError

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
