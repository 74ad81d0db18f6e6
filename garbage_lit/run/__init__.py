"""Orchestration of a job: what happens around training, never the training itself.

* :mod:`~garbage_lit.run.commands`: every command's start (threads, warnings into the log) and how a user error ends
  it (one line, exit 1).
* :mod:`~garbage_lit.run.resume`: finding the run ``resume=true`` / ``ckpt_path`` continues; the command that resumes
  a stopped run.
* :mod:`~garbage_lit.run.failures`: how a job that stops early (Ctrl-C, SIGTERM, an error) is recorded and told.
* :mod:`~garbage_lit.run.requeue`: SLURM time limits and preemption: the job continues its own folder.
* :mod:`~garbage_lit.run.launch`: per-job set-up (GPU per sweep job, CPU threads, DataLoader workers, DDP ranks).
"""
