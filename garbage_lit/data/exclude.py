"""``data.exclude``: a list of photos to leave out, one path per line relative to the data root.

``garbage_lit.audit`` writes one (``exclude.txt``) from the photos it suspects of wrong labels; a person edits it
and points ``data.exclude`` at it. The data set itself is never changed: left-out photos are listed in the run's
``data_problems.csv`` as excluded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from garbage_lit.data.samples import DataProblem, ScanResult, relative_file
from garbage_lit.errors import DataError
from garbage_lit.records.atomic import atomic_write

log = logging.getLogger(__name__)

EXCLUDED = "excluded"  # the action data_problems.csv records for them


def read_exclusions(path: str | Path) -> list[str]:
    """The paths listed in ``path``: one per line, blank lines and ``#`` comments skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.exclude={path} does not exist; point it at a list of photos to leave out (one path "
                        f"per line, relative to data.root; garbage_lit.audit writes one), or set data.exclude=null")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Path(line).as_posix() for line in lines if line]


def write_exclusions(path: Path, files: Sequence[str], header: Sequence[str] = ()) -> None:
    """Write ``files`` (relative to the data root) as a ``data.exclude`` list, ``header`` as comment lines above."""
    with atomic_write(path, encoding="utf-8") as handle:
        handle.writelines(f"# {line}\n" for line in header)
        handle.writelines(f"{file}\n" for file in files)


def drop_excluded(scan: ScanResult, exclude: str | Path) -> tuple[ScanResult, list[DataProblem]]:
    """``scan`` without the photos ``exclude`` lists, and a row for data_problems.csv per photo left out.

    A listed path that is not among the scanned photos is only logged (the list may predate a fix of the data);
    a list none of whose paths is found belongs to other data and is an error.
    """
    listed = read_exclusions(exclude)
    wanted = set(listed)
    kept = [s for s in scan.samples if relative_file(s.path, scan.root) not in wanted]
    found = wanted & {relative_file(s.path, scan.root) for s in scan.samples}
    if listed and not found:
        raise DataError(f"data.exclude={exclude} lists {len(wanted)} photos but none of them is under {scan.root} "
                        f"(e.g. {listed[0]}); the paths must be relative to data.root")
    unknown = sorted(wanted - found)
    if unknown:
        log.warning("data.exclude=%s: %d listed path(s) are not among the photos under %s, e.g. %s", exclude,
                    len(unknown), scan.root, unknown[:3])
    problems = [DataProblem(file, f"listed in data.exclude={exclude}", EXCLUDED) for file in sorted(found)]
    return dataclasses.replace(scan, samples=kept), problems
