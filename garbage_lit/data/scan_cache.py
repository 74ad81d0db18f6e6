"""Check results of a dataset's files kept between runs, so a sweep's jobs scan and hash the images once.

Every job's set-up decodes and hashes each image (:func:`garbage_lit.data.scan.check_images`), work that
grows with the dataset and is the same in every job. This module keeps each file's result, keyed by its
absolute path (under the resolved root), size and modification time (ns; of the file a symlink points to),
in ``<cache_dir>/scan/<root key>.json``; a file whose size or mtime changed is read again. Concurrent
jobs take turns under a file lock, so the first one scans and the others read its records. Records
that cannot be read (corrupt, another format or Pillow version) are ignored with a warning and
rewritten: the scan then simply checks every file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import PIL

from garbage_lit.atomic import atomic_write
from garbage_lit.data.cache_store import file_lock

log = logging.getLogger(__name__)

RECORDS_FORMAT = "garbage_lit scan records v2"  # v2: the image's width and height


class ImageCheck(NamedTuple):
    """One file's check: the sha256 of its bytes, why it cannot be used (None: it can), its size in pixels."""

    sha256: str
    problem: str | None
    width: int = 0
    height: int = 0


RECORD_LENGTH = 2 + len(ImageCheck._fields)  # file size, mtime, then the check


def records_path(cache_dir: str | Path, root: Path) -> Path:
    """Where the records of the dataset at ``root`` are kept."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32]
    return Path(cache_dir).expanduser() / "scan" / f"{key}.json"


def _stamp(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # unreadable: checked (and reported) every time
    return str(path.absolute()), stat.st_size, stat.st_mtime_ns  # absolute(): no per-file syscalls, unlike resolve()


def _load(path: Path) -> dict[str, list]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["format"] != RECORDS_FORMAT or data["pillow"] != PIL.__version__:
            log.info("scan cache %s is from another format or Pillow version: checking every file again", path)
            return {}
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(v, list) and len(v) == RECORD_LENGTH
                                                  for v in files.values()):
            raise ValueError("malformed file records")
        return files
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("scan cache %s is unreadable (%s): checking every file again and rewriting it", path, exc)
        return {}


def _save(path: Path, files: dict[str, list]) -> None:
    with atomic_write(path, encoding="utf-8") as handle:  # readers see the old records or the new ones
        handle.write(json.dumps({"format": RECORDS_FORMAT, "pillow": PIL.__version__, "files": files}))


def cached_checks(paths: Sequence[Path], root: Path, cache_dir: str | Path,
                  check_all: Callable[[list[Path]], list[ImageCheck]]) -> list[ImageCheck]:
    """``check_all(paths)``'s results, calling it only for files without a current record."""
    store = records_path(cache_dir, root)
    with file_lock(store.with_suffix(".lock")):
        old = _load(store)
        stamps = [_stamp(p) for p in paths]
        results: list[ImageCheck | None] = []
        for stamp in stamps:
            record = old.get(stamp[0]) if stamp else None
            hit = record is not None and (record[0], record[1]) == stamp[1:]
            results.append(ImageCheck(*record[2:]) if hit else None)
        missing = [i for i, r in enumerate(results) if r is None]
        for i, result in zip(missing, check_all([paths[i] for i in missing])):
            results[i] = result
        log.info("scan cache: %d of %d files read from %s, %d checked", len(paths) - len(missing), len(paths),
                 store, len(missing))
        files = {stamp[0]: [stamp[1], stamp[2], *result] for stamp, result in zip(stamps, results)
                 if stamp is not None and result.sha256}  # a file that could not be read is not recorded
        if files != old:
            store.parent.mkdir(parents=True, exist_ok=True)
            _save(store, files)
    return results
