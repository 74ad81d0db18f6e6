"""Scan a dataset: read it in its layout, then decode and hash every image once, keeping the records.

The layout's reader (:mod:`garbage_lit.data.layouts`) finds the labelled images; every image is then
decoded and hashed here, once, at set-up, so a bad file never crashes a run mid-epoch. An image that
cannot be used (unreadable, empty, truncated) becomes a :class:`DataProblem` row and is left out; a
tiny one is kept and listed.

Scan records: decoding and hashing grows with the dataset and is the same in every job, so each file's
result is kept between runs, keyed by its absolute path (under the resolved root), size and modification
time (ns; of the file a symlink points to), in ``<cache_dir>/scan/<root key>.json``; a file whose size or
mtime changed is read again. Concurrent jobs take turns under a file lock, so the first one scans and the
others read its records. Records that cannot be read (corrupt, another format or Pillow version) are
ignored with a warning and rewritten: the scan then simply checks every file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import PIL
from PIL import Image, UnidentifiedImageError

from garbage_lit.data.cache_store import file_lock, progress
from garbage_lit.data.images import load_rgb
from garbage_lit.data.layouts import LAYOUTS
from garbage_lit.data.samples import KEPT, DataProblem, Sample, ScanResult, relative_file
from garbage_lit.errors import DataError
from garbage_lit.records.atomic import atomic_write

log = logging.getLogger(__name__)

SCAN_PROGRESS_MIN = 500  # images: smaller scans take seconds and show no progress bar
MIN_IMAGE_SIDE = 32  # px: a photo whose shorter side is smaller is kept but warned about (upscaled 8x to 256)
RECORDS_FORMAT = "garbage_lit scan records v2"  # v2: the image's width and height


class ImageCheck(NamedTuple):
    """One file's check: the sha256 of its bytes, why it cannot be used (None: it can), its size in pixels."""

    sha256: str
    problem: str | None
    width: int = 0
    height: int = 0


def scan_dataset(root: str | Path, layout: str, check_workers: int = 4,
                 cache_dir: str | Path | None = None) -> ScanResult:
    """Scan ``root`` in ``layout`` and check every image can be decoded (reusing ``cache_dir``'s scan records)."""
    root = Path(root).expanduser()
    if layout not in LAYOUTS:
        raise DataError(f"data.layout={layout!r} is not supported; choose one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise DataError(
            f"dataset root {root} does not exist or is not a folder: set data.root to the folder holding "
            f"the {layout!r} layout"
        )
    result = LAYOUTS[layout](root)
    others = (f" ({len(result.ignored)} other files were not read as images, e.g. {result.ignored[0].file}: "
              f"{result.ignored[0].problem})" if result.ignored else "")
    if not result.samples and not result.problems:
        raise DataError(f"dataset root {root} holds no images in the {layout!r} layout (data.layout){others}; "
                        f"check data.root and data.layout")
    checked, problems = check_images(result.samples, root, workers=check_workers, cache_dir=cache_dir)
    result.samples = checked
    result.problems.extend(problems)
    if not result.samples:
        raise DataError(f"no usable images under {root}: {len(result.problems)} problem(s), e.g. "
                        f"{result.problems[0].file}: {result.problems[0].problem}{others}")
    return result


def check_image(path: Path) -> ImageCheck:
    """Decode ``path`` once; return the sha256 of its bytes, the problem (or None) and its size in pixels."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageCheck("", f"unreadable file: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ImageCheck(digest, "empty file (0 bytes)")
    try:
        load_rgb(path, draft_size=64)
        with Image.open(io.BytesIO(data)) as header:  # the stored size: the draft above decodes a smaller one
            width, height = header.size
    except UnidentifiedImageError:
        return ImageCheck(digest, "not an image Pillow can read (wrong extension or corrupt header)")
    except Image.DecompressionBombError as exc:
        return ImageCheck(digest, f"image over Pillow's decompression-bomb limit: {exc}")
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageCheck(digest, f"truncated or corrupt image: {exc}")
    return ImageCheck(digest, None, width, height)


def check_images(samples: Iterable[Sample], root: Path, workers: int = 4,
                 cache_dir: str | Path | None = None) -> tuple[list[Sample], list[DataProblem]]:
    """Decode every image (in threads: Pillow releases the GIL); keep the good ones, list the rest.

    Images whose shorter side is under ``MIN_IMAGE_SIDE`` are kept and listed. With ``cache_dir``, files
    whose path, size and mtime are unchanged since an earlier scan are not read again (see
    :func:`cached_checks`).
    """
    samples = list(samples)

    def check_all(paths: list[Path]) -> list[ImageCheck]:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
            return list(progress(pool.map(check_image, paths), len(paths), "scanning images", SCAN_PROGRESS_MIN))

    paths = [s.path for s in samples]
    results = check_all(paths) if cache_dir is None else cached_checks(paths, root, cache_dir, check_all)
    good: list[Sample] = []
    problems: list[DataProblem] = []
    for sample, check in zip(samples, results):
        if check.problem is not None:
            problems.append(DataProblem(relative_file(sample.path, root), check.problem))
            continue
        good.append(Sample(sample.path, sample.label, check.sha256))
        if min(check.width, check.height) < MIN_IMAGE_SIDE:
            problems.append(DataProblem(relative_file(sample.path, root),
                                        f"tiny image ({check.width}x{check.height} px, shorter side under "
                                        f"{MIN_IMAGE_SIDE} px): upscaled to the input size it shows little", KEPT))
    return good, problems


# -- scan records kept between runs -------------------------------------------------------------
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
