"""Content-keyed cache entries that many processes may fill at once without ever reading half a file.

An entry is a folder ``<cache_dir>/<kind>/<key>/`` whose name is the SHA-256 of everything its
contents depend on (:func:`content_key`). :func:`cached_entry` fills it under an exclusive
``fcntl`` lock held on ``<key>.lock``: the builder writes into a private temporary folder, which is
renamed into place only once complete (``rename`` is atomic on one file system). A writer that dies
mid-fill leaves at most a temporary folder, which the next writer deletes before redoing the fill;
the kernel drops a dead process's lock, so nobody waits forever. Readers see a complete entry or none.

Long fills (and the scan) show a :func:`progress` bar: tqdm, as Lightning's own bar, on stderr, with the
count, the rate (images/s) and the time left; it stays quiet when stderr is not a terminal (logs, CI, a
sweep's job output), so only a person watching sees it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

COMPLETE_MARKER = "complete.json"
TEMP_PREFIX = ".tmp-"

T = TypeVar("T")


def content_key(payload: dict[str, Any]) -> str:
    """SHA-256 of ``payload`` as canonical JSON: any change to any input gives a new key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_entry(cache_dir: str | Path, kind: str, payload: dict[str, Any],
                 build: Callable[[Path], None]) -> Path:
    """The folder of the complete cache entry for ``payload``, calling ``build(folder)`` to fill it once.

    ``build`` writes its files into the (temporary) folder it is given; ``payload`` is recorded
    beside them in ``complete.json``, whose presence marks the entry complete.
    """
    key = content_key(payload)
    root = Path(cache_dir).expanduser() / kind
    entry = root / key
    if (entry / COMPLETE_MARKER).is_file():
        return entry
    with file_lock(root / f"{key}.lock"):
        if (entry / COMPLETE_MARKER).is_file():  # another job filled it while we waited
            return entry
        for leftover in [*root.glob(f"{TEMP_PREFIX}{key}-*"), entry]:
            if leftover.exists():  # an interrupted fill: never trusted, always redone
                log.warning("cache: removing incomplete %s", leftover)
                shutil.rmtree(leftover)
        tmp = root / f"{TEMP_PREFIX}{key}-{os.getpid()}"
        tmp.mkdir(parents=True)
        log.info("cache: filling %s once; later runs with the same inputs reuse it", entry)
        build(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(payload, indent=1, sort_keys=True))
        tmp.rename(entry)
    log.info("cache: filled %s", entry)
    return entry


def progress(iterable: Iterable[T] | None, total: int, desc: str, min_total: int = 0) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand); off when ``total < min_total`` or not a terminal."""
    return tqdm(iterable, total=total, desc=desc, unit="img", dynamic_ncols=True,
                disable=None if total >= min_total else True)
