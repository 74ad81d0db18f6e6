"""The ground floor: what a run writes and how it is read back, with no torch (the reports stand on it alone).

* :mod:`~garbage_lit.records.folder`: the run-folder contract: file names, statuses, metric keys, ``metrics.json``.
* :mod:`~garbage_lit.records.atomic`: the one atomic file writer (whole or not at all; a full disk named plainly).
* :mod:`~garbage_lit.records.tables`: the one CSV writer and reader, and the one Markdown-table writer.
* :mod:`~garbage_lit.records.predictions`: ``test_predictions.csv``, a run's per-image test predictions.
* :mod:`~garbage_lit.records.provenance`: the code, libraries, machine and command behind a result.
"""
