"""Checkpoints written so that a kill at any moment cannot corrupt them (``trainer.plugins`` in every config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from garbage_lit.records.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside its target, flush it to disk, then rename it
    (:func:`~garbage_lit.records.atomic.atomic_write`).

    So ``last.ckpt`` is always either the previous complete checkpoint or the new complete one, and a failed
    write (a kill, a full disk) leaves nothing behind. (Lightning's default goes through a temporary file in the
    system temp folder and then *moves* it, which is a copy when that folder sits on another file system, and
    leaves the temporary file behind when the process is killed.) Remote paths (``s3://`` and the like) keep
    Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_write(path, "wb", fsync=True) as handle:
            torch.save(checkpoint, handle)
