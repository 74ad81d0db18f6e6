"""Turn a sweep folder into the paper's comparison: tables (Markdown + CSV), plots and the paper's numbers.

    python -m garbage_lit.report multirun/2026-01-01/12-00-00-000000
    python -m garbage_lit.report SWEEP_DIR --reference my_paper_numbers.yaml
    python -m garbage_lit.report multirun/search/search            # an hparams_search=optuna folder (search report)

A grid sweep gets :mod:`~garbage_lit.report.sweep`'s report (its docstring lists the files), a search folder
:mod:`~garbage_lit.report.search`'s. Exits 2 when the folder holds no sweep, the reference file is bad or an
option is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from garbage_lit.records.folder import read_search
from garbage_lit.report.claims import Bootstrap
from garbage_lit.report.paper import REFERENCE_PATH
from garbage_lit.report.search import search_report
from garbage_lit.report.sweep import build_report, write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m garbage_lit.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder (holds multirun.yaml and 0/, 1/, ...)")
    parser.add_argument("--reference", type=Path, default=REFERENCE_PATH,
                        help=f"the paper's numbers (default: the bundled {REFERENCE_PATH.name})")
    parser.add_argument("--out", type=Path, default=None, help="where to write the files (default: the sweep folder)")
    defaults = Bootstrap()
    parser.add_argument("--resamples", type=int, default=defaults.resamples,
                        help=f"bootstrap resamples of the test images for the claims (default {defaults.resamples})")
    parser.add_argument("--confidence", type=float, default=defaults.confidence,
                        help=f"the claims' interval (default {defaults.confidence})")
    parser.add_argument("--bootstrap-seed", type=int, default=defaults.seed, help="seed of the bootstrap resampling")
    args = parser.parse_args(argv)
    if args.resamples < 1 or not 0 < args.confidence < 1:
        parser.error(f"--resamples={args.resamples} must be >= 1 and --confidence={args.confidence} in (0, 1)")
    if read_search(args.sweep_dir) is not None:  # an hparams_search=optuna folder: its own report
        markdown = search_report(args.sweep_dir)
        out = args.out or args.sweep_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        print(markdown)
        print(f"Wrote {out / 'report.md'}")
        return 0
    try:
        report = build_report(args.sweep_dir, args.reference,
                              Bootstrap(args.resamples, args.confidence, args.bootstrap_seed))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_report(report, args.out)
    print(report.markdown())
    print("Wrote " + ", ".join(str(p) for p in files.values()))
    if report.unfinished:
        print(f"{len(report.unfinished)} job(s) did not complete; the commands above re-run only them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
