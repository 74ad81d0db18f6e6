"""``test_predictions.csv``: every test image's prediction of a run's final test, so a report can pair jobs image by
image. Written by :class:`~garbage_lit.callbacks.test_predictions.TestPredictions`, read by the sweep report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from garbage_lit.records.folder import PREDICTION_COLUMNS, PREDICTIONS_FILE
from garbage_lit.records.tables import read_csv, write_csv


def write_predictions(path: Path, files: Sequence[str], labels: Sequence[str], predicted: Sequence[str],
                      probabilities: Sequence[float]) -> None:
    """One row per image: its file (relative to the data root), true class, predicted class and its probability."""
    rows = [dict(zip(PREDICTION_COLUMNS, (file, label, pred, f"{prob:.6f}")))
            for file, label, pred, prob in zip(files, labels, predicted, probabilities)]
    write_csv(path, rows, PREDICTION_COLUMNS)


def read_predictions(run_dir: str | Path) -> dict[str, bool] | None:
    """Whether each test image (by file) was predicted right, from the run's predictions file; None when absent."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    return {row["file"]: row["label"] == row["predicted"] for row in read_csv(path)}
