"""The process's random state in every checkpoint, back where it was when a run resumes; and what a resume cannot
promise, said.

The data's order and transforms, and MixUp/CutMix, draw from seeds of their own (:mod:`garbage_lit.data.sampling`);
what is left on the process's generators is the model's own randomness (dropout, drop-connect). This callback keeps
torch's, NumPy's and Python's generator states in each checkpoint and puts them back just before the first training
batch after a resume, so that batch draws what it would have drawn in a run that never stopped.

A resume is bit-identical only on the same kind of machine with the same software and threads, in one process, and
on a GPU only with deterministic kernels: the checkpoint records the set-up (:func:`environment`), and a resume that
cannot be exact says so in its log and in ``metrics.json`` (``resumed.exact: false`` and what differs).
"""

from __future__ import annotations

import logging
import platform
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from garbage_lit.callbacks.metrics_json import MetricsJson

log = logging.getLogger(__name__)

RESUMED = "resumed"  # metrics.json: {"exact": bool, "differs": {what: [then, now]}}


def environment(trainer: pl.Trainer) -> dict[str, Any]:
    """What floating-point results depend on beyond the code: the machine, the software, the threads, the device."""
    return {"machine": platform.machine(), "processor": _processor(), "torch": str(torch.__version__),
            "threads": torch.get_num_threads(), "device": str(trainer.strategy.root_device),
            "processes": trainer.world_size,
            "deterministic": torch.are_deterministic_algorithms_enabled()
            and not torch.is_deterministic_algorithms_warn_only_enabled()}


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()


class RandomStates(pl.Callback):
    """Saves the random generators' states (and the environment) in every checkpoint; a resumed run gets them back at
    its first training batch and records whether it can be exact."""

    def __init__(self, metrics_json: MetricsJson | None = None) -> None:
        self.metrics_json = metrics_json
        self._pending: dict[str, Any] | None = None
        self._trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state()
        states = {"torch": torch.get_rng_state(),
                  "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],  # plain: weights_only loads
                  "python": random.getstate()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return {**states, "environment": environment(self._trainer) if self._trainer is not None else {}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._pending is None:
            return
        saved, self._pending = self._pending, None
        torch.set_rng_state(saved["torch"])
        kind, keys, *rest = saved["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(_tuples(saved["python"]))
        if "cuda" in saved and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda"])
        then, now = saved.get("environment") or {}, environment(trainer)
        differs = {key: [then.get(key), value] for key, value in now.items() if then.get(key) != value}
        if now["processes"] > 1:  # every process gets back the first one's generators: not what each had
            differs["processes"] = [then.get("processes"), now["processes"]]
        if now["device"].startswith("cuda") and not now["deterministic"]:  # e.g. adaptive pooling's backward
            differs["deterministic"] = [then.get("deterministic"), now["deterministic"]]
        if differs:
            log.warning("this resume is not bit-identical to a run that never stopped (%s): it follows the same data "
                        "and random draws, but its numbers may differ slightly", ", ".join(
                            f"{k}: {a} -> {b}" for k, (a, b) in differs.items()))
        if self.metrics_json is not None:
            self.metrics_json.update(**{RESUMED: {"exact": not differs, "differs": differs}})


def _tuples(value: Any) -> Any:
    """Python's generator state with its tuples back (a checkpoint may have turned them into lists)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
