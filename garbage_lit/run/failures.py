"""How a job that stops early ends: recorded in its run folder, told on the command line in a line or two.

* Ctrl-C (SIGINT) or SIGTERM (what SLURM sends before it kills a job: its time limit, ``scancel``):
  ``status: interrupted`` and the command that resumes the run, in metrics.json and on the console; exit
  code 130 or 143. Inside ``Trainer.fit`` Lightning's own SIGTERM handler stops the loop after the current
  batch; elsewhere (data set-up, the final test) SIGTERM stops the job at once, as Ctrl-C does.
* An error the user fixes (a config value, the data, a full disk): its message alone, exit code 1; the
  traceback is in ``failure.log`` (and printed with ``HYDRA_FULL_ERROR=1``).
* A trial stopped early by a hyperparameter search: ``status: pruned``.
* A SLURM job requeued at its warning signal (:mod:`garbage_lit.run.requeue`): nothing; the next attempt goes on.
* Anything else: ``status: failed``, the traceback in ``failure.log`` and on the console.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from garbage_lit.callbacks.requeue import Requeued
from garbage_lit.records.atomic import no_space_left
from garbage_lit.records.folder import CHECKPOINT_DIR, FAILED, INTERRUPTED, PRUNED, record_failure, run_status
from garbage_lit.run.commands import ErrorMessage, user_error
from garbage_lit.run.resume import resume_command

log = logging.getLogger(__name__)

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it
SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


@contextmanager
def recording_stops(cfg: DictConfig) -> Iterator[None]:
    """Run a job: SIGTERM stops it as Ctrl-C does, and however it stops is recorded in its run folder
    (``cfg.paths.output_dir`` when it stops: a resumed run's own folder) and told as described above."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_job) if on_main_thread else None
    try:
        yield
    except Requeued:
        raise  # SLURM runs this job again, from the checkpoint just saved: not a stop (run/requeue.py)
    except BaseException as exc:
        stop = _recorded(Path(cfg.paths.output_dir), exc)
        if stop is exc:
            raise
        raise stop from exc
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_job(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside a Trainer's loops stops the job here. (Inside them Lightning's handler, which calls this
    one too, stops the loop after the current batch: a consistent point to resume from.)"""
    if signal.getsignal(signal.SIGTERM) is _stop_job:
        raise SIGTERMException


def stopping_signal(exc: BaseException) -> signal.Signals | None:
    """SIGINT or SIGTERM when ``exc`` is how one of them stopped the job, else None.

    (Lightning turns Ctrl-C inside ``fit`` or ``test`` into ``SystemExit(1)`` raised while handling the
    ``KeyboardInterrupt``, and SIGTERM into ``SIGTERMException``.)
    """
    if isinstance(exc, SIGTERMException):
        return signal.SIGTERM
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit)
                                              and isinstance(exc.__context__, KeyboardInterrupt)):
        return signal.SIGINT
    return None


def _recorded(run_dir: Path, exc: BaseException) -> BaseException:
    """Record how the job stopped in ``run_dir``; return the exception the command line should end with."""
    from optuna import TrialPruned  # imported late: optuna is slow to import and only searches need it

    signum = stopping_signal(exc)
    if signum is not None and run_status(run_dir) == FAILED:
        # The cluster's verdict came first (hydra/launcher=slurm records a job SLURM cancelled or killed as failed;
        # its SIGTERM reaches this job after that): the job's own view does not replace it.
        return SystemExit(EXIT_CODES[signum])
    if signum is not None:
        command = resume_command(run_dir)
        record_failure(run_dir, exc, INTERRUPTED, error=f"interrupted by {SIGNAL_NAMES[signum]}",
                       resume_command=command)
        log.warning("interrupted by %s; the run's finished work is in %s. Resume it with:\n  %s",
                    SIGNAL_NAMES[signum], run_dir / CHECKPOINT_DIR, command)
        return SystemExit(EXIT_CODES[signum])
    if isinstance(exc, TrialPruned):
        record_failure(run_dir, exc, PRUNED)
        return exc
    full = no_space_left(exc)
    if full is not None:
        error = f"No space left on device writing {full.filename}" if full.filename \
            else f"No space left on device (writing in {run_dir})"
        command = resume_command(run_dir)
        record_failure(run_dir, exc, FAILED, error=error, resume_command=command)
        return ErrorMessage(f"{error}. The run's finished epochs are kept in {run_dir / CHECKPOINT_DIR}. Free space "
                            f"there and resume it with\n  {command}\nor copy the run folder to a bigger disk and "
                            f"resume the copy: its training command with ckpt_path=<the copy>")
    record_failure(run_dir, exc)
    error = user_error(exc)
    return ErrorMessage(str(error)) if error is not None else exc
