"""The experiment trackers a run logs to, each keeping a run's summary, pictures and metric names its own way.

* :mod:`~garbage_lit.loggers.base`: the :class:`~garbage_lit.loggers.base.Tracker` protocol, what every logger gets
  at the end of a run, and the fallback for any other Lightning logger (files in its folder).
* :mod:`~garbage_lit.loggers.summary`: a finished run as its folder records it, in the shapes trackers take.
* :mod:`~garbage_lit.loggers.names`: a sweep job's run name (what it varies) and group (its sweep).
* :mod:`~garbage_lit.loggers.keys`: metric names made legal for each tracker's rules.
* :mod:`~garbage_lit.loggers.tensorboard`, :mod:`~garbage_lit.loggers.mlflow`, :mod:`~garbage_lit.loggers.wandb`:
  one tracker each.
"""
