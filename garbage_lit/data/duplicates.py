"""Byte-identical images: find them, report them, and (on request) keep one copy.

A photo stored twice can sit in two classes (its label is ambiguous) or on both sides of the
train/test split (the test then measures memory, not generalisation). Groups are found by the
SHA-256 the scan records for every image.

``dedupe`` never touches the test split, so results stay comparable with runs that did not
dedupe. On the training side (train and val) it drops every copy of an image that also sits in
the test split or in another class, and keeps the first copy (in scan order) of an image repeated
within one class.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from garbage_lit.data.samples import Sample
from garbage_lit.records.tables import write_csv

DUPLICATE_COLUMNS = ("sha256", "file", "class_name", "split", "kinds", "action")


@dataclass(frozen=True)
class DuplicateGroup:
    """Samples (indices into the scanned list) whose files have identical bytes."""

    sha256: str
    members: tuple[int, ...]
    cross_class: bool
    cross_split: bool  # some copies in test, some in train/val

    @property
    def kinds(self) -> str:
        kinds = [name for name, flag in (("cross-class", self.cross_class), ("train/test", self.cross_split)) if flag]
        return ";".join(kinds) or "same-class"


def find_duplicates(samples: Sequence[Sample], splits: Sequence[str]) -> list[DuplicateGroup]:
    """Groups of two or more samples with the same bytes, in scan order."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        if sample.sha256:
            by_digest[sample.sha256].append(index)
    groups = []
    for digest, members in by_digest.items():
        if len(members) < 2:
            continue
        sides = {splits[i] == "test" for i in members}
        groups.append(DuplicateGroup(digest, tuple(members), len({samples[i].label for i in members}) > 1,
                                     len(sides) > 1))
    return groups


def dropped_by_dedupe(groups: Sequence[DuplicateGroup], splits: Sequence[str]) -> set[int]:
    """Indices ``data.dedupe=true`` leaves out (never a test image; see the module docstring)."""
    dropped: set[int] = set()
    for group in groups:
        training_side = [i for i in group.members if splits[i] != "test"]
        if group.cross_class or group.cross_split:
            dropped.update(training_side)
        else:
            dropped.update(training_side[1:])
    return dropped


def write_duplicates(path: Path, root: Path, samples: Sequence[Sample], splits: Sequence[str],
                     class_names: Sequence[str], groups: Sequence[DuplicateGroup], dropped: set[int],
                     dedupe: bool) -> None:
    """One row per copy: its group, class, split, what kind of duplicate it is and what was done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, [dict(zip(DUPLICATE_COLUMNS, (
        group.sha256, samples[i].path.relative_to(root).as_posix(), class_names[samples[i].label], splits[i],
        group.kinds, ("dropped" if i in dropped else "kept") if dedupe else "kept (data.dedupe=false)")))
        for group in groups for i in group.members], DUPLICATE_COLUMNS)


def summary(groups: Sequence[DuplicateGroup]) -> str:
    """One line for the log: how many groups of each kind."""
    cross_class = sum(g.cross_class for g in groups)
    cross_split = sum(g.cross_split for g in groups)
    same = sum(not (g.cross_class or g.cross_split) for g in groups)
    return (f"{len(groups)} group(s) of byte-identical images: {cross_class} across classes, "
            f"{cross_split} across train/test, {same} within one class on one side of the split")
