"""What a model gets wrong and how sure it is: the mistakes gallery, calibration, the unsure threshold, label audits.

* :mod:`~garbage_lit.insight.gallery`: a grid of photos with their true and predicted classes.
* :mod:`~garbage_lit.insight.calibration`: expected calibration error, the reliability diagram, temperature scaling.
* :mod:`~garbage_lit.insight.coverage`: accuracy against coverage, for picking the "unsure" threshold of ``predict``.
* :mod:`~garbage_lit.insight.gradcam`: Grad-CAM heat maps over the gallery's photos (the ``insight`` extra).
* :mod:`~garbage_lit.insight.label_issues`: out-of-sample probabilities and confident learning (``garbage_lit.audit``).
* :mod:`~garbage_lit.insight.figures`: the pictures of an evaluated split, and the callback drawing them for a run's
  final test.
"""
