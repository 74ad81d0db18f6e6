"""Tables as files: the one CSV writer (and its reader) and the one Markdown-table writer, used by every part that
writes a table (run folders, the reports, the search, evaluate, predict, the audit)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from garbage_lit.records.atomic import atomic_write


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """``rows`` as CSV with ``columns`` (default: the first row's keys; other keys left out), None as an empty cell."""
    columns = list(columns or (rows[0].keys() if rows else []))
    with atomic_write(path, newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: "" if row.get(k) is None else row.get(k) for k in columns} for row in rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file written by :func:`write_csv`, as dicts of strings keyed by its header."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def format_cell(value: Any) -> str:
    """Accuracies and learning rates with up to 4 decimals, losses and seconds with 3, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                   cell: Callable[[Any], str] = format_cell) -> str:
    """A GitHub-flavoured Markdown table of ``columns`` (default: the first row's keys), each value through ``cell``."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if not rows:
        return "_(no rows)_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
