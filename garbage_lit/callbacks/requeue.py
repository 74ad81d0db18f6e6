"""The callback that turns submitit's warning signal (SLURM's time limit or a preemption is near) into a checkpoint at
the next batch boundary, records the attempt in ``metrics.json`` and lets submitit requeue the job
(:mod:`garbage_lit.run.requeue` tells the whole protocol)."""

from __future__ import annotations

import logging
import os
import signal
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from garbage_lit.callbacks.checkpoint import is_last_batch
from garbage_lit.callbacks.metrics_json import MetricsJson
from garbage_lit.records.folder import ATTEMPTS, CHECKPOINT_DIR, REQUEUE_CHECKPOINT, read_metrics

log = logging.getLogger(__name__)


class Requeued(SystemExit):
    """This attempt saved its state and SLURM requeued the job: the process ends, the run goes on (not a failure)."""


def in_submitit_slurm_job() -> bool:
    """True inside a job that hydra/launcher=slurm (submitit) started on SLURM."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def restart_count() -> int:
    """How many times SLURM started this job again (requeue after a time limit, preemption, a node failure)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _slurm_job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


class RequeueOnSignal(pl.Callback):
    """Turns submitit's warning signal into a checkpoint at the next batch boundary, then lets submitit requeue.

    It goes after the run's other callbacks (but the checkpoints), so the checkpoint holds their hooks' work on the
    batch (an EMA's update); a resume from it continues exactly (docs/trustworthy_runs.md).

    Records every attempt of the run in ``metrics.json["attempts"]``: its SLURM job id, restart count, host and
    start time; an attempt that ended at the signal also has ``stopped``, ``epochs_done``, ``checkpoint`` and
    ``outcome`` (``requeued``, or why submitit did not requeue). The last attempt's outcome is the run's status.
    """

    def __init__(self, run_dir: str | Path, metrics_json: MetricsJson, resuming: bool) -> None:
        import submitit

        self.run_dir = Path(run_dir)
        self.checkpoint = self.run_dir / CHECKPOINT_DIR / REQUEUE_CHECKPOINT
        self.metrics_json = metrics_json
        earlier = (read_metrics(self.run_dir) or {}).get(ATTEMPTS, []) if resuming else []
        self.attempts = [*earlier, {"slurm_job_id": _slurm_job_id(), "restart": restart_count(),
                                    "host": socket.gethostname(), "started": _now()}]
        self.signum = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)  # what submitit asked SLURM for
        self._submitit_handler: Any = None
        self._training = False   # between on_train_start and on_train_end: the signal waits for a batch boundary
        self._signalled = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.metrics_json.update(**{ATTEMPTS: self.attempts})
        if self._submitit_handler is None and callable(signal.getsignal(self.signum)):
            # Lightning registers its handlers after this hook and restores the ones it found (this one) at teardown.
            self._submitit_handler = signal.getsignal(self.signum)
            signal.signal(self.signum, self._on_signal)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._training = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not is_last_batch(trainer, batch_idx):  # Lightning resuming from an epoch's last batch skips a validation
            self._hand_over_if_signalled(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hand_over_if_signalled(trainer)  # the signal came in the epoch's last batch or its validation

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hand_over_if_signalled(trainer)  # a signal during the last epoch's validation
        self._training = False
        if trainer.is_global_zero:
            self.checkpoint.unlink(missing_ok=True)  # training finished: the epoch checkpoints say the rest

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._training = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self._training:
            self._hand_over(checkpoint=None)  # nothing is training (setup, testing): requeue at once
            return
        log.warning("%s: SLURM's time limit (or a preemption) is near; checkpointing at the next batch boundary",
                    signal.Signals(signum).name)
        self._signalled = True

    def _hand_over_if_signalled(self, trainer: pl.Trainer) -> None:
        # Every DDP rank must take part in the save; any rank's signal counts for all.
        if not trainer.strategy.reduce_boolean_decision(self._signalled, all=False):
            return
        self._signalled = False
        trainer.save_checkpoint(self.checkpoint)
        self._hand_over(self.checkpoint)

    def _hand_over(self, checkpoint: Path | None) -> None:
        """Record how this attempt ends and let submitit requeue the job (or fail it, past max_num_timeout)."""
        attempt = self.attempts[-1]
        attempt.update(stopped=_now(), epochs_done=len(self.metrics_json.epochs),
                       **({"checkpoint": str(checkpoint.relative_to(self.run_dir))} if checkpoint else {}))
        try:
            self._submitit_handler(self.signum, None)  # requeues and exits, or raises why it does not requeue
        except SystemExit as exc:
            attempt["outcome"] = "requeued"
            self.metrics_json.update(**{ATTEMPTS: self.attempts})
            log.info("requeued after %d epochs; the next attempt continues from %s", attempt["epochs_done"],
                     checkpoint or "the newest checkpoint of the run")
            raise Requeued(exc.code) from None
        except Exception as exc:
            attempt["outcome"] = f"not requeued: {exc}"
            self.metrics_json.update(**{ATTEMPTS: self.attempts})
            raise
        # Returned: not rank 0, which requeues for the whole job; this rank trains on until SLURM stops it.
