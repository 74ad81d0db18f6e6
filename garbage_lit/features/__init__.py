"""Training a frozen backbone's head on cached features: decided by ``garbage_lit.train`` before ``fit``.

* :mod:`~garbage_lit.features.cache`: the backbone's features of a set of images, computed once and shared.
* :mod:`~garbage_lit.features.dataset`: those features in memory, served a batch at a time.
* :mod:`~garbage_lit.features.datamodule`: whether a run may train on them, and the data module that serves them.
"""
