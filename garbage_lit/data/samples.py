"""The types every data step shares: a labelled image, a problem with one file, a scan's result, the data error.

Nothing here imports the rest of ``garbage_lit.data``, so any module (a layout reader, the scan, a cache,
the features) can use these without pulling in the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SKIPPED, KEPT, IGNORED = "skipped", "kept", "ignored"  # DataProblem actions for single files


@dataclass(frozen=True)
class Sample:
    """One labelled image: its path, class index and the SHA-256 of its bytes."""

    path: Path
    label: int
    sha256: str = ""


@dataclass(frozen=True)
class DataProblem:
    """A file that was left out of (or converted for) the dataset, and why."""

    file: str
    problem: str
    action: str = SKIPPED


@dataclass
class ScanResult:
    """Everything found under a dataset root: the images, their problems, and the other files (``ignored``)."""

    root: Path
    layout: str
    class_names: list[str]
    samples: list[Sample]
    problems: list[DataProblem] = field(default_factory=list)
    ignored: list[DataProblem] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def relative_file(path: Path, root: Path) -> str:
    """How a listing names a file: relative to the dataset root, with ``/`` separators."""
    return path.relative_to(root).as_posix()


def content_ids(samples: Sequence[Sample]) -> list[str]:
    """The SHA-256 of each sample's bytes, in order: what a cache of their pixels depends on."""
    missing = [str(s.path) for s in samples if not s.sha256]
    if missing:
        raise ValueError(f"{len(missing)} samples carry no sha256 (e.g. {missing[0]}); build them with "
                         f"garbage_lit.data.scan.scan_dataset, which hashes every file")
    return [s.sha256 for s in samples]
