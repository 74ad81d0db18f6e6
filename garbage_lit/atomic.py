"""One way to write a file that readers see whole or not at all, and that a failure leaves no trace of."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", fsync: bool = False, **open_kwargs: Any) -> Iterator[IO]:
    """A temporary file beside ``path`` that replaces it when the block completes; removed if the block fails.

    ``os.replace`` within one folder is atomic, so readers see the previous file or the new one, never half of
    one. ``fsync`` flushes the data to disk before the rename (checkpoints: a crash right after cannot leave
    an empty file under the final name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open(mode, **open_kwargs) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
