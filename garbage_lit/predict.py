"""Predict the top-k classes of new photos with a trained checkpoint.

    python -m garbage_lit.predict ckpt=outputs/<run>/checkpoints/model.ckpt inputs=[photo.jpg,/folder/of/photos]
    python -m garbage_lit.predict ckpt=outputs/<run>/checkpoints/model.ckpt -- "papier & karton/foto 1.jpg" folder/
    python -m garbage_lit.predict ckpt=... inputs_file=photos.txt          # one path per line, any characters
    python -m garbage_lit.predict ckpt=[a.ckpt,b.ckpt] inputs=...           # an ensemble: probabilities averaged

Paths after ``--`` are taken as they are (no Hydra quoting needed for ``&``, spaces or brackets), as are the lines of
``inputs_file``. Flip averaging and the test-time size are the checkpoint's unless ``flip_tta=``, ``image_size=`` or
``resize_size=`` say otherwise.

Writes ``predictions.csv`` and ``predictions.json`` into its folder (``outputs/predict/<date>/<time>``) and prints a
table: one row per file, with its ``status``: ``predicted``; ``skipped`` (under a folder, a file that is not an image by
its name, judged as training's scan judges it, with why; a path that does not exist); ``failed`` (an image that cannot
be decoded, with the error). Probabilities are calibrated when the model was (temperature scaling on its validation
split). With ``threshold=t`` a photo whose top probability is below ``t`` is answered ``unsure`` (for a sorting bin:
ask a person); ``evaluate`` draws how accuracy and coverage trade against ``t``. For garbage_classify models
("group/item" class names) each class comes with its broad group in Chinese and English. The command exits with
status 1 when no file could be predicted.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from garbage_lit.callbacks.prediction_rows import FAILED, PREDICTED, SKIPPED, UNSURE, TopKRows, prediction_row
from garbage_lit.config import CONFIG_DIR
from garbage_lit.data.datasets import Input, UnlabelledImages, collect_inputs
from garbage_lit.errors import ConfigError, DataError
from garbage_lit.models.loading import eval_transform, inference_trainer, load_for_inference, preprocessing_of
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.records.tables import write_csv
from garbage_lit.run.commands import cli as command_line
from garbage_lit.run.commands import one_line_errors
from garbage_lit.run.launch import start_command

log = logging.getLogger(__name__)

register_resolvers()


PATHS_AFTER = "--"  # what separates the overrides from paths taken as they are
_paths_after_separator: list[str] = []  # set by cli() from the command line


def input_paths(cfg: DictConfig) -> list[str]:
    """The paths to predict: ``inputs`` (one or a list), the lines of ``inputs_file`` (blank lines and ``#``
    comments left out) and the paths after ``--`` on the command line."""
    inputs = [] if cfg.inputs is None else [cfg.inputs] if isinstance(cfg.inputs, str) else list(cfg.inputs)
    if cfg.get("inputs_file"):
        listing = Path(cfg.inputs_file).expanduser()
        if not listing.is_file():
            raise DataError(f"inputs_file={cfg.inputs_file}: no such file; give a text file with one path per line")
        lines = [line.strip() for line in listing.read_text(encoding="utf-8-sig").splitlines()]
        inputs += [line for line in lines if line and not line.startswith("#")]
    inputs += _paths_after_separator
    if not inputs:
        raise ConfigError("predict needs photos: inputs=[photo.jpg,folder] (quote paths with spaces or & as "
                          "'inputs=[\"my photos/a & b.jpg\"]'), inputs_file=<a list, one path per line>, or the "
                          "paths after -- at the end of the command")
    return [str(path) for path in inputs]


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict every image under the inputs (:func:`input_paths`) with ``cfg.ckpt``; write and return one row per
    file, predicted, skipped or failed."""
    if cfg.top_k < 1:
        raise ConfigError(f"top_k={cfg.top_k} must be at least 1")
    if cfg.threshold is not None and not 0 <= cfg.threshold <= 1:
        raise ConfigError(f"threshold={cfg.threshold} must be a probability in [0, 1] (or null: always answer)")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    inputs = collect_inputs(input_paths(cfg))
    model = load_for_inference(cfg.ckpt, cfg.flip_tta, cfg.image_size, cfg.resize_size)
    readable = [item for item in inputs if not item.skipped]
    rows = []
    if readable:
        dataset = UnlabelledImages(readable, eval_transform(model), preprocessing_of(model)["image_size"])
        if cfg.threshold is not None and model.temperature is None:
            log.warning("threshold=%s on probabilities that were never calibrated (the model was trained without a "
                        "validation split, so no temperature was fitted): they tend to be overconfident",
                        cfg.threshold)
        writer = TopKRows(dataset, model.class_names, cfg.top_k, cfg.threshold)
        trainer = inference_trainer(output_dir, callbacks=[writer])
        loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
        trainer.predict(model, dataloaders=loader, return_predictions=False)
        rows = writer.rows
    rows = _in_input_order(inputs, rows)
    write_predictions(output_dir, rows, min(cfg.top_k, len(model.class_names)))
    print(format_table(rows, cfg.print_limit))
    log.info("%s; every row, with its reason, in %s", count_line(rows), output_dir / "predictions.csv")
    return rows


def _in_input_order(inputs: list[Input], predicted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every input's row, in the order the inputs were found: predicted rows and skipped ones."""
    by_file = {row["file"]: row for row in predicted}
    return [by_file.get(str(item.path)) or prediction_row(item.path, SKIPPED, item.skipped) for item in inputs]


def count_line(rows: list[dict[str, Any]]) -> str:
    """``5 predicted, 2 skipped (notes.txt: not an image file ...), 1 failed (broken.jpg: ...)``."""
    parts = []
    for status in (PREDICTED, SKIPPED, FAILED):
        these = [row for row in rows if row["status"] == status]
        if these or status == PREDICTED:
            examples = "; ".join(f"{Path(row['file']).name}: {row['error']}" for row in these[:2])
            parts.append(f"{len(these)} {status}" + (f" ({examples}{'; ...' if len(these) > 2 else ''})"
                                                     if status != PREDICTED and these else ""))
    return ", ".join(parts)


def write_predictions(output_dir: Path, rows: list[dict[str, Any]], top_k: int) -> None:
    """``predictions.json`` (rows as they are) and ``predictions.csv`` (one column per rank and field)."""
    write_json_atomic(output_dir / "predictions.json", {"predictions": rows})
    fields = ["class", "probability"]
    if any("group_zh" in top for row in rows for top in row["top"]):
        fields += ["group_zh", "group_en"]
    header = ["file", "status", "error", "decision"] + [f"top{rank}_{field}" for rank in range(1, top_k + 1)
                                                        for field in fields]
    flat = [{**{key: row[key] for key in header[:4]},
             **{f"top{rank}_{field}": top.get(field, "") for rank, top in enumerate(row["top"], start=1)
                for field in fields}} for row in rows]
    write_csv(output_dir / "predictions.csv", flat, header)


def format_table(rows: list[dict[str, Any]], limit: int) -> str:
    """Console table: file, then the top classes as ``class [group] probability``, or SKIPPED / FAILED and why;
    ``UNSURE`` first when the top probability is below the threshold."""
    lines = []
    for row in rows[:limit]:
        if row["status"] != PREDICTED:
            result = f"{row['status'].upper()} {row['error']}"
        else:
            result = ("UNSURE  " if row["decision"] == UNSURE else "") + "  ".join(
                f"{t['class']}" + (f" [{t['group_zh']} {t['group_en']}]" if "group_zh" in t else "")
                + f" {t['probability']:.3f}" for t in row["top"])
        lines.append(f"{row['file']}  {result}")
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows in predictions.csv")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        start_command(cfg)
        rows = predict(cfg)
        if not any(row["status"] == PREDICTED for row in rows):
            raise DataError(f"no input could be predicted: {count_line(rows)}; predictions.csv lists each with "
                            f"its reason")


def cli() -> None:
    """The command line (``garbage-lit-predict``, ``python -m garbage_lit.predict``); what follows ``--`` is a list of
    paths, taken as they are."""
    if PATHS_AFTER in sys.argv:
        at = sys.argv.index(PATHS_AFTER)
        _paths_after_separator[:] = sys.argv[at + 1:]
        sys.argv[:] = sys.argv[:at]
    command_line(main, "predict")


if __name__ == "__main__":
    cli()
