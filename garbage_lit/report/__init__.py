"""The reports of a sweep folder: ``python -m garbage_lit.report SWEEP_DIR`` (see :mod:`~garbage_lit.report.__main__`).

* :mod:`~garbage_lit.report.sweep`: a grid sweep as the paper's comparison: :func:`build_report`, its
  Markdown, :func:`write_report` (report.md, the CSVs, the figures).
* :mod:`~garbage_lit.report.jobs`: the sweep's job folders read back, failed and missing jobs included.
* :mod:`~garbage_lit.report.tables`: configurations (jobs grouped over seeds) and the report's tables as rows;
  ``SUMMARY_METRICS``, the final metrics the summary shows.
* :mod:`~garbage_lit.report.claims`: the paper's conclusions tested (paired bootstrap, learning speed, verdicts).
* :mod:`~garbage_lit.report.paper`: the paper's numbers (``paper_reference.yaml``) beside the sweep's own.
* :mod:`~garbage_lit.report.plots`: the sweep's figures (learning curves, final accuracy).
* :mod:`~garbage_lit.report.search`: the report of a search folder (``hparams_search=optuna``).
* :mod:`~garbage_lit.records.tables`: the one CSV writer and the one Markdown-table writer.
"""
