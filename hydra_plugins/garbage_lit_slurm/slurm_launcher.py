"""``hydra/launcher=slurm``: hydra-submitit-launcher's SLURM launcher, which also notices jobs that SLURM ended.

A job that SLURM kills (``scancel``, out of memory, a time limit without requeue, a failed node) never writes
its result, so ``job.results()`` raises for it, and the stock launcher, which waits for the jobs in order,
lets that exception end the whole sweep while the other jobs run on unseen. This launcher polls every job
of a batch, asks the accounting database (``sacct``) for their states at least every :data:`POLL_SECONDS`,
records a killed job as failed in its own folder as soon as SLURM reports it, and returns every job's
result once all have ended: the sweep goes on with its siblings and reports the failure like any other.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf, open_dict

from garbage_lit.records.folder import COMPLETED, PRUNED, record_failure, run_status

log = logging.getLogger(__name__)

POLL_SECONDS = 15  # at most this long between two sacct calls (submitit alone waits up to 10 minutes)


class SlurmJobEnded(RuntimeError):
    """SLURM ended a job before it returned a result (cancelled, out of memory, time limit, node failure)."""


class SlurmLauncher(SubmititSlurmLauncher):
    """Submits a batch of Hydra jobs as one SLURM job array and waits for all of them, whatever ends them."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and len(job_overrides) > 0
        # The executor exactly as hydra-submitit-launcher builds it (BaseSubmititLauncher.launch).
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                         **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]})
        queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in queue_keys else f"{self._EXECUTOR}_{k}": v
                                      for k, v in self.params.items() if k not in ("submitit_folder",
                                                                                    "max_num_timeout")})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
        return self._wait(jobs, [p[0] for p in job_params], initial_job_idx)

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run one Hydra job inside its SLURM job (submitit calls this there), then ignore a late warning signal.

        The job has returned: SLURM's warning before the time limit must neither requeue it nor, arriving while
        Python exits (handlers back to the default), kill it and leave it FAILED in the accounting.
        """
        import submitit

        result = super().__call__(*args, **kwargs)
        signal.signal(getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG), signal.SIG_IGN)
        return result

    def _wait(self, jobs: list[Any], job_overrides: list[list[str]], initial_job_idx: int) -> list[JobReturn]:
        """Every job's result in order; a job SLURM ended is recorded failed as soon as sacct says so."""
        results: dict[int, JobReturn] = {}
        last_sacct = time.monotonic()
        while len(results) < len(jobs):
            force = time.monotonic() - last_sacct >= POLL_SECONDS
            if force:
                last_sacct = time.monotonic()
            for n, job in enumerate(jobs):
                if n in results:
                    continue
                if job.done(force_check=force):
                    results[n] = self._result(job, job_overrides[n], initial_job_idx + n)
                force = False  # one sacct call answers for every job of the array
            if len(results) < len(jobs):
                time.sleep(1)
        return [results[n] for n in range(len(jobs))]

    def _result(self, job: Any, overrides: list[str], job_num: int) -> JobReturn:
        from submitit.core.utils import UncompletedJobError

        try:
            return job.results()[0]
        except UncompletedJobError as exc:  # no result written: SLURM ended the job (or it died outside Hydra)
            folder = self._job_folder(overrides, job_num)
            error = SlurmJobEnded(f"SLURM job {job.job_id} ended {job.state} before it could return "
                                  f"(job log: {job.paths.stderr})")
            error.__cause__ = exc
            if run_status(folder) not in (COMPLETED, PRUNED):
                record_failure(folder, error)
            log.error("job %d (%s): %s", job_num, folder, error)
            return JobReturn(overrides=overrides, working_dir=str(folder), status=JobStatus.FAILED,
                             _return_value=error)

    def _job_folder(self, overrides: list[str], job_num: int) -> Path:
        """The job's folder, as run_job derives it in the job: ``hydra.sweep.dir`` / ``hydra.sweep.subdir``."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = job_num
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
