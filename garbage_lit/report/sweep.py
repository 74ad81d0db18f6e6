"""A sweep folder as the paper's comparison: every table of the report, its Markdown and its files.

Writes into the sweep folder: ``report.md`` (everything below), ``paper_table.csv`` (per-epoch train/test
loss and accuracy per configuration, as the paper's figure 6), ``summary.csv`` (final test accuracy and
macro recall, bin metrics when recorded, mean ± std over seeds), ``paper_comparison.csv`` (the paper's
figures 6 and 7 beside ours), ``claims.csv`` (the paper's conclusions with our verdicts), ``claim_pairs.csv``
(every one-factor pair: difference in final test accuracy, bootstrap interval, verdict), ``learning_speed.csv``,
``jobs.csv`` (every job, failed and missing ones included), ``learning_curves.png`` and ``accuracy_comparison.png``;
on a cross-validation sweep (``-m data.fold=...``) also ``folds.csv`` (mean ± sd over folds per configuration) and
``fold_pairs.csv`` (paired differences on the same folds, :mod:`garbage_lit.report.folds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garbage_lit.records.folder import (
    COMPLETED,
    COVERAGE_FILE,
    GALLERY_FILE,
    RELIABILITY_FILE,
    TEMPERATURE,
    TEST_ACC,
    TEST_ECE,
)
from garbage_lit.records.tables import format_cell, markdown_table, write_csv
from garbage_lit.report.claims import (
    NONE_TESTED,
    NOT_PAPER_SWEEP,
    NOT_TESTED,
    Bootstrap,
    Claims,
    in_paper_grid,
    judge_claims,
)
from garbage_lit.report.folds import fold_rows, held_out_metric, jobs_off_their_folds_split, paired_rows
from garbage_lit.report.jobs import JobResult, load_sweep
from garbage_lit.report.paper import (
    NOT_IN_SWEEP,
    REFERENCE_PATH,
    comparison_table,
    load_reference,
    reference_label,
    weights_line,
)
from garbage_lit.report.plots import accuracy_comparison_figure, learning_curves_figure
from garbage_lit.report.tables import (
    SUMMARY_METRICS,
    Configuration,
    bin_keys,
    common_split,
    fixed_overrides,
    fixed_recipe,
    group_configurations,
    jobs_table,
    paper_table,
    per_class_table,
    summary_table,
)

SUMMARY_COLUMNS = ["weights", "s/epoch", "best epoch", "status"]  # after the metrics' columns
EPOCH_NOTE = ("Epochs are counted from 0 in every table and plot, as in metrics.json, Lightning's progress bar and "
              "the paper's figure 6: epoch 9 is the tenth.")


@dataclass
class SweepReport:
    """Everything the report shows, as plain rows; ``markdown()`` renders it."""

    sweep_dir: Path
    jobs: list[JobResult]
    configurations: list[Configuration]
    paper_rows: list[dict[str, Any]]
    summary_rows: list[dict[str, Any]]
    comparison_rows: list[dict[str, Any]]
    job_rows: list[dict[str, Any]]
    reference: dict[str, Any]
    split_sha256: str | None
    other_split_jobs: list[JobResult]
    claims: Claims
    per_class_rows: list[dict[str, Any]]
    fold_metric: str | None = None  # what the folds' jobs were measured on; None: no job ran on a fold
    fold_rows: list[dict[str, Any]] | None = None
    fold_pair_rows: list[dict[str, Any]] | None = None

    @property
    def unfinished(self) -> list[JobResult]:
        """Failed, missing and interrupted jobs, in job order."""
        return [j for j in self.jobs if j.status != COMPLETED]

    @property
    def best_job(self) -> JobResult | None:
        """The completed job with the highest final test accuracy."""
        done = [j for j in self.jobs if j.status == COMPLETED and j.final.get(TEST_ACC) is not None]
        return max(done, key=lambda j: j.final[TEST_ACC], default=None)

    def rerun_commands(self) -> list[str]:
        return [job.rerun_command() for job in self.unfinished]

    def summary_markdown(self) -> str:
        """The summary's metrics as "mean ± std (n=...)" when some configuration ran several seeds, else plain."""
        metrics = [f"{key} ± std" if self._several_seeds() else key for key in SUMMARY_METRICS]
        return markdown_table(self.summary_rows,
                              self._setting_columns() + metrics + SUMMARY_COLUMNS + bin_keys(self.configurations))

    def epochs_markdown(self) -> str:
        return markdown_table(_paired_epochs(self.paper_rows), None)

    def comparison_markdown(self) -> str:
        """The paper's rows for the configurations this sweep ran; the others named in one line."""
        shown = [r for r in self.comparison_rows if NOT_IN_SWEEP not in r["note"]]
        absent = list(dict.fromkeys(reference_label(r) for r in self.comparison_rows if r not in shown))
        note = _reference_note(self.reference)
        if not shown:
            return (f"{note}\n\nNone of the paper's configurations ({'; '.join(absent)}) is in this sweep, so none "
                    f"of its numbers has one of ours beside it (they are in paper_comparison.csv).")
        return "\n\n".join([
            note, weights_line(self.jobs, self.reference),
            markdown_table(shown, ["figure", "model", "batch_size", "optimizer", "lr", "epoch", "metric", "paper",
                                   "ours", "difference", "weights", "note"]),
            *([f"Not in this sweep: {'; '.join(absent)}."] if absent else [])])

    def claims_markdown(self) -> str:
        """Each of the paper's conclusions with our verdict and numbers, then the pairs and speeds behind them; one
        line instead of the verdicts when the sweep holds none of the paper's configurations."""
        boot = self.claims.bootstrap
        pairs = ["### One-factor pairs (final test accuracy)", "", markdown_table(self.claims.pair_rows, None), "",
                 "### Learning speed", "", markdown_table(self.claims.speed_rows, None) if self._epochs() > 1
                 else "The sweep ran one epoch: every job is at its final accuracy after it, so no learning speed."]
        if not any(in_paper_grid(config) for config in self.configurations):
            return "\n".join([NOT_PAPER_SWEEP, "", *pairs])
        claims = [f"- **{row['claim']}**: {row['verdict']}. {row['numbers']}" for row in self.claims.claim_rows]
        if all(row["verdict"] == NOT_TESTED for row in self.claims.claim_rows):
            claims = [NONE_TESTED]
        return "\n".join([
            *claims, "",
            f"Verdicts compare the paper's choice with the other value (paper's choice minus other): *holds* when "
            f"the {boot.confidence:.0%} interval of a paired bootstrap over the test images ({boot.resamples} "
            f"resamples) is above 0, *reversed* when below 0, else *within noise*. low/high: that interval; seed "
            f"spread: std over seeds of the per-seed difference.", "", *pairs])

    def per_class_markdown(self) -> str:
        """Each class's final test accuracy per configuration (the seeds' mean), classes as rows."""
        if not self.per_class_rows:
            return "No completed job recorded per-class accuracy."
        return markdown_table(self.per_class_rows, None)

    def insight_markdown(self) -> str:
        """Each completed job's accuracy beside its calibration, with links to its final test's pictures."""
        pictures = (("mistakes", GALLERY_FILE), ("reliability", RELIABILITY_FILE), ("coverage", COVERAGE_FILE))
        rows = [{"job": job.num, "overrides": " ".join(job.overrides), TEST_ACC: job.final.get(TEST_ACC),
                 TEST_ECE: job.final.get(TEST_ECE), TEMPERATURE: job.final.get(TEMPERATURE),
                 "pictures": ", ".join(f"[{name}]({(job.folder / file).relative_to(self.sweep_dir).as_posix()})"
                                       for name, file in pictures if (job.folder / file).is_file()) or "-"}
                for job in self.jobs if job.status == COMPLETED]
        return (f"{TEST_ECE}: expected calibration error of the final test's probabilities (after temperature "
                f"scaling when the job had a validation split to fit it on). Links are relative to the sweep "
                f"folder.\n\n" + markdown_table(rows, None))

    def folds_markdown(self) -> str:
        """Each configuration's mean ± sd over its folds, then the paired differences between configurations."""
        held_out = "test split" if self.fold_metric == TEST_ACC else "validation split (the test split was not read)"
        pairs = markdown_table(self.fold_pair_rows, None) if self.fold_pair_rows else \
            "No two configurations completed two or more of the same folds: nothing to pair."
        return "\n".join([
            f"Each job is measured on the part its fold holds out, its {held_out}: {self.fold_metric} of the kept "
            f"epoch. sd: standard deviation over the folds (and seeds).", "",
            markdown_table(self.fold_rows, None), "",
            "### Paired differences on the same folds (first minus second)", "",
            "Per fold (and seed) the first configuration's value minus the second's; mean, sd and a 95% Student-t "
            "interval over the folds both completed. *above 0*: the first is better beyond the folds' noise.", "",
            pairs])

    def unfinished_markdown(self) -> str:
        if not self.unfinished:
            return "Every job completed."
        return "\n".join([
            markdown_table([r for r in self.job_rows if r["status"] != COMPLETED],
                           ["job", "status", "overrides", "error", "folder"]), "",
            "Re-run only these jobs (each writes into its own folder; then run the report again):", "",
            "```bash", *self.rerun_commands(), "```"])

    def markdown(self) -> str:
        done = len(self.jobs) - len(self.unfinished)
        parts = [f"# Sweep report: {self.sweep_dir}", "",
                 f"{done} of {len(self.jobs)} jobs completed." + _data_line(self.jobs), "",
                 *([_fixed_line(self.jobs), ""] if self.jobs else []),
                 _split_line(self), "", EPOCH_NOTE, "",
                 f"## Summary (sorted by final test accuracy; {self._seeds_said()})", "", self.summary_markdown(), "",
                 "## Per-class test accuracy (one row per class, one column per configuration; mean over seeds)", "",
                 self.per_class_markdown(), "",
                 *(["## Cross-validation folds", "", self.folds_markdown(), ""] if self.fold_metric else []),
                 "## Mistakes and calibration per job", "", self.insight_markdown(), "",
                 "## Per-epoch train and test loss / accuracy (as the paper's figure 6; mean over seeds)", "",
                 self.epochs_markdown(), "",
                 "## The paper's numbers beside ours", "", self.comparison_markdown(), "",
                 "## Claims: the paper's conclusions on this sweep's data", "", self.claims_markdown(), ""]
        if self.unfinished:
            parts += ["## Jobs that did not complete", "", self.unfinished_markdown(), ""]
        parts += ["![learning curves](learning_curves.png)", "", "![accuracy](accuracy_comparison.png)", ""]
        return "\n".join(parts)

    def _several_seeds(self) -> bool:
        return any(len(config.final(TEST_ACC)) > 1 for config in self.configurations)

    def _seeds_said(self) -> str:
        """``mean ± std over seeds`` when some configuration ran several, else that each ran once."""
        if self._several_seeds():
            return ("mean ± std over seeds and folds; n: completed jobs" if self.fold_metric
                    else "mean ± std over seeds; n: completed seeds")
        return "one completed job per configuration, so no spread"

    def _epochs(self) -> int:
        """The most epochs any completed job ran."""
        return max((c.num_epochs for c in self.configurations), default=0)

    def _setting_columns(self) -> list[str]:
        return list(self.configurations[0].settings) if self.configurations else []


def build_report(sweep_dir: str | Path, reference_path: str | Path = REFERENCE_PATH,
                 bootstrap: Bootstrap = Bootstrap()) -> SweepReport:
    """Read the sweep in ``sweep_dir`` and compute every table of the report (claims with ``bootstrap``)."""
    sweep_dir = Path(sweep_dir).resolve()
    jobs = load_sweep(sweep_dir)
    configs = group_configurations(jobs)
    reference = load_reference(reference_path)
    split_sha256, other_split = common_split(jobs)
    metric = held_out_metric(configs)
    if metric is not None:
        other_split = jobs_off_their_folds_split(jobs)
    return SweepReport(sweep_dir, jobs, configs, paper_table(configs), summary_table(configs),
                       comparison_table(configs, reference), jobs_table(jobs, split_sha256), reference,
                       split_sha256, other_split, judge_claims(configs, bootstrap), per_class_table(configs),
                       metric, fold_rows(configs, metric) if metric else None,
                       paired_rows(configs, metric) if metric else None)


def write_report(report: SweepReport, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the Markdown, CSV and PNG files (into the sweep folder by default); return them by name."""
    out = Path(out_dir) if out_dir else report.sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("report.md", "summary.csv", "per_class.csv", "paper_table.csv",
                                           "paper_comparison.csv", "claims.csv", "claim_pairs.csv",
                                           "learning_speed.csv", "jobs.csv", "learning_curves.png",
                                           "accuracy_comparison.png")}
    if report.fold_metric:
        files.update({name: out / name for name in ("folds.csv", "fold_pairs.csv")})
        write_csv(files["folds.csv"], report.fold_rows)
        write_csv(files["fold_pairs.csv"], report.fold_pair_rows or [])
    files["report.md"].write_text(report.markdown(), encoding="utf-8")
    summary_columns = [c for c in report.summary_rows[0] if not c.endswith("± std")] \
        if report.summary_rows else []
    write_csv(files["summary.csv"], report.summary_rows, summary_columns)
    write_csv(files["per_class.csv"], report.per_class_rows)
    write_csv(files["paper_table.csv"], report.paper_rows)
    write_csv(files["paper_comparison.csv"], report.comparison_rows)
    write_csv(files["claims.csv"], report.claims.claim_rows)
    write_csv(files["claim_pairs.csv"], report.claims.pair_rows)
    write_csv(files["learning_speed.csv"], report.claims.speed_rows)
    write_csv(files["jobs.csv"], report.job_rows)
    for name, make in (("learning_curves.png", learning_curves_figure),
                       ("accuracy_comparison.png", accuracy_comparison_figure)):
        figure = make(report.configurations)
        figure.savefig(files[name], dpi=120, bbox_inches="tight")
    return files


def _paired_epochs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Markdown form of the per-epoch table: one "loss / acc" cell per split and epoch."""
    paired = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key.endswith("/loss"):
                stem = key[: -len("/loss")]
                acc = row.get(f"{stem}/acc")
                out[f"{stem}/loss / acc"] = (f"{format_cell(value)} / {format_cell(acc)}"
                                             if value is not None or acc is not None else "-")
            elif not key.endswith("/acc"):
                out[key] = value
        paired.append(out)
    return paired


def _data_line(jobs: Sequence[JobResult]) -> str:
    roots = sorted({(j.metrics.get("data") or {}).get("root") for j in jobs if j.metrics.get("data")})
    return f" Data: {', '.join(str(r) for r in roots)}." if roots else ""


def _fixed_line(jobs: Sequence[JobResult]) -> str:
    """What every job shared: its command-line overrides and the resolved recipe (epochs, image size, ...)."""
    overrides = " ".join(fixed_overrides(jobs))
    recipe = ", ".join(f"{key}={_hydra_value(value)}" for key, value in fixed_recipe(jobs).items())
    parts = ([f"command line `{overrides}`"] if overrides else []) + ([recipe] if recipe else [])
    return f"Every job: {'; '.join(parts)}." if parts else "Every job: no shared override or recorded setting."


def _hydra_value(value: Any) -> str:
    """A value as it would be typed on the command line (``true``, ``null``, ``0.2``)."""
    return "true" if value is True else "false" if value is False else "null" if value is None else str(value)


def _split_line(report: SweepReport) -> str:
    if report.split_sha256 is None:
        return "Split check: no job recorded a split manifest."
    if report.fold_metric and not report.other_split_jobs:
        return "Split check: cross-validation; within each fold every job that recorded one used the same split."
    if not report.other_split_jobs:
        return f"Split check: every job that recorded one used the same split (manifest sha256 " \
               f"{report.split_sha256[:12]})."
    nums = ", ".join(str(j.num) for j in report.other_split_jobs)
    return (f"**Split check: jobs {nums} used a different split** than the others (sha256 "
            f"{report.split_sha256[:12]}); their numbers are not comparable (see split_manifest_sha256 in jobs.csv).")


def _reference_note(reference: dict[str, Any]) -> str:
    note = f"Paper: {reference.get('source', '?')}; data: {reference.get('dataset', '?')}."
    if not reference.get("transcribed"):
        note += (" **The paper's values have not been transcribed yet** (they are null in "
                 f"{REFERENCE_PATH.name}); fill them from the paper's figure 6 or pass --reference.")
    return note
