"""The report of a search folder (``hparams_search=optuna``): counts, cost, the best trials and the final test."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

from garbage_lit.records.folder import COMPLETED, TEST_ACC, TEST_RECALL, TRIALS_FILE, read_search
from garbage_lit.records.tables import markdown_table

PLOTS = ("optimization_history.png", "param_importances.png", "slice.png")  # as garbage_lit.search.outputs draws


def search_report(sweep_dir: Path, top: int = 10) -> str:
    """The Markdown report of a search folder: counts, cost, the best trials and the final test result."""
    summary = read_search(sweep_dir)
    metric = summary["optimized_metric"]
    with (sweep_dir / TRIALS_FILE).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    complete = sorted((r for r in rows if r["state"] == "complete"), key=lambda r: float(r[metric]),
                      reverse=summary["direction"] == "maximize")
    params = [c for c in (rows[0] if rows else {}) if c not in ("trial", "state", metric, "seconds", "epochs_run",
                                                                 "error", "folder")]
    counts = ", ".join(f"{n} {state}" for state, n in summary["trials"].items() if n)
    lines = [f"# Search report: {sweep_dir}", "",
             f"Study `{summary['study_name']}` ({summary['storage']}): {counts} of {summary['n_trials']} trials "
             f"asked for; {summary['trial_minutes']} trial-minutes, median {summary['median_trial_seconds']} s per "
             f"trial. Objective: {metric} ({summary['direction']}), validation split only.", ""]
    final = summary.get("final")
    if final and final.get("status") == COMPLETED:
        lines += ["## Final result (the test split, evaluated once)", "",
                  f"Best trial {final['trial']} retrained on the {final['trained_on']}: "
                  f"**{TEST_ACC} {final.get(TEST_ACC):.4f}**, {TEST_RECALL} {final.get(TEST_RECALL):.4f}, "
                  f"{metric} {final.get(metric):.4f} (run folder {final['folder']}).", ""]
    elif final:
        lines += [f"The final run of trial {final['trial']} failed: {final.get('error')}", ""]
    else:
        lines += ["No final run yet (no completed trial, or hparams_search.final.enabled=false).", ""]
    if summary.get("best"):
        lines += ["Best configuration: `python -m garbage_lit.train "
                  + " ".join(shlex.quote(o) for o in summary["best"]["overrides"]) + "`", ""]
    lines += [f"## Top {min(top, len(complete))} trials by {metric}", "",
              markdown_table(complete[:top], ["trial", metric, *params, "seconds"], cell=_short)]
    lines += ["", *(f"![{name[:-4]}]({name})" for name in PLOTS if (sweep_dir / name).is_file()), ""]
    return "\n".join(lines)


def _short(value: str | None) -> str:
    """A trials.csv cell: 4 significant digits, whole numbers without a point, an empty cell as ``-``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value or "-"
    return f"{number:.4g}" if not number.is_integer() else str(int(number))
