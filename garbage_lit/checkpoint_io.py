"""Checkpoint writing that a kill at any moment cannot corrupt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside its target, flush it to disk, then rename it.

    ``os.replace`` within one folder is atomic, so ``last.ckpt`` is always either the previous
    complete checkpoint or the new complete one. (Lightning's default goes through a temporary
    file in the system temp folder and then *moves* it, which is a copy when that folder sits on
    another file system, and leaves the temporary file behind when the process is killed.)
    Remote paths (``s3://`` and the like) keep Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
