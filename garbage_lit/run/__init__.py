"""A run's lifecycle and its folder.

* :mod:`~garbage_lit.run.folder`: the folder's file names, status values and metric keys; reading
  ``metrics.json``; the one atomic writer; recording a failure and the attempts of a resumed run.
* :mod:`~garbage_lit.run.recorder`: the callback that keeps ``metrics.json`` current while training.
* :mod:`~garbage_lit.run.predictions`: the callback that writes ``test_predictions.csv`` (every test image's
  prediction from the final test), and reading it back.
* :mod:`~garbage_lit.run.resume`: finding the run ``resume=true`` / ``ckpt_path`` continues; the command
  that resumes a stopped run.
* :mod:`~garbage_lit.run.failures`: how a job that stops early (Ctrl-C, SIGTERM, an error) is recorded and told.
* :mod:`~garbage_lit.run.launch`: per-job set-up (GPU per sweep job, DataLoader workers, DDP ranks).
* :mod:`~garbage_lit.run.provenance`: what produced a result.
"""
