"""One way to write a file that readers see whole or not at all, and that a failure leaves no trace of."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def no_space_left(exc: BaseException | None) -> OSError | None:
    """The "No space left on device" (or over quota) error behind ``exc``, itself or in its chain, if any.

    (torch.save reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc:...] unexpected
    pos``, raised while handling the OSError that says what happened.)
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", fsync: bool = False, **open_kwargs: Any) -> Iterator[IO]:
    """A temporary file beside ``path`` that replaces it when the block completes; removed if the block fails.

    ``os.replace`` within one folder is atomic, so readers see the previous file or the new one, never half of
    one. ``fsync`` flushes the data to disk before the rename (checkpoints: a crash right after cannot leave an
    empty file under the final name). On a full disk the error is a plain ``OSError`` naming ``path``.
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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = no_space_left(exc)
        if full is not None and full.filename is None:
            raise OSError(full.errno, os.strerror(full.errno), str(path)) from exc
        raise


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON atomically (:func:`atomic_write`), so a reader never sees half a file."""
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(json.dumps(payload, indent=2, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
