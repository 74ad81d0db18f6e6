"""Predict the top-k classes of new photos with a trained checkpoint.

    python -m garbage_lit.predict ckpt=outputs/<run>/checkpoints/model.ckpt inputs=[photo.jpg,/folder/of/photos]
    python -m garbage_lit.predict ckpt=[a.ckpt,b.ckpt] inputs=...      # an ensemble: probabilities averaged

Flip averaging and the test-time size are the checkpoint's unless ``flip_tta=``, ``image_size=`` or ``resize_size=``
say otherwise.

Writes ``predictions.csv`` and ``predictions.json`` into the run folder and prints a table. Probabilities are
calibrated when the model was (temperature scaling on its validation split). With ``threshold=t`` a photo whose
top probability is below ``t`` is answered ``unsure`` (for a sorting bin: ask a person); ``evaluate`` draws how
accuracy and coverage trade against ``t``. For garbage_classify models ("group/item" class names) each class
comes with its broad group in Chinese and English. A file that cannot be read gets a row with its error; the
other files are still predicted. The command exits with status 1 when no input could be predicted.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from garbage_lit.checkpoints import eval_transform, inference_trainer, load_for_inference, preprocessing_of
from garbage_lit.config import CONFIG_DIR, register_resolvers
from garbage_lit.data.groups import garbage_group
from garbage_lit.data.images import UnlabelledImages, collect_inputs
from garbage_lit.run.folder import write_json_atomic

log = logging.getLogger(__name__)

register_resolvers()


UNSURE = "unsure"  # the decision below the threshold


class TopKRows(BasePredictionWriter):
    """Turns each predicted batch into rows (file, error, decision, top-k classes with probabilities and groups).

    The decision is the top class, or ``unsure`` when its probability is below ``threshold``.
    """

    def __init__(self, dataset: UnlabelledImages, class_names: Sequence[str], top_k: int,
                 threshold: float | None = None) -> None:
        super().__init__(write_interval="batch")
        self.dataset = dataset
        self.class_names = list(class_names)
        self.top_k = min(top_k, len(class_names))
        self.threshold = threshold
        self.rows: list[dict[str, Any]] = []

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: torch.Tensor,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        _, indices, errors = batch
        top = pl_module.probabilities(prediction).topk(self.top_k, dim=1)
        for index, error, probs, classes in zip(indices.tolist(), errors, top.values.tolist(), top.indices.tolist()):
            row: dict[str, Any] = {"file": str(self.dataset.inputs[index].path), "error": error, "decision": "",
                                   "top": []}
            if not error:
                row["top"] = [self._describe(c, p) for c, p in zip(classes, probs)]
                unsure = self.threshold is not None and probs[0] < self.threshold
                row["decision"] = UNSURE if unsure else self.class_names[classes[0]]
            self.rows.append(row)

    def _describe(self, class_index: int, probability: float) -> dict[str, Any]:
        name = self.class_names[class_index]
        group = garbage_group(name)
        return {"class": name, "probability": probability,
                **({"group_zh": group[0], "group_en": group[1]} if group else {})}


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict every image under ``cfg.inputs`` with ``cfg.ckpt``; write and return one row per image."""
    if cfg.top_k < 1:
        raise ValueError(f"top_k={cfg.top_k} must be at least 1")
    if cfg.threshold is not None and not 0 <= cfg.threshold <= 1:
        raise ValueError(f"threshold={cfg.threshold} must be a probability in [0, 1] (or null: always answer)")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = load_for_inference(cfg.ckpt, cfg.flip_tta, cfg.image_size, cfg.resize_size)
    inputs = [cfg.inputs] if isinstance(cfg.inputs, str) else list(cfg.inputs)
    dataset = UnlabelledImages(collect_inputs(inputs), eval_transform(model), preprocessing_of(model)["image_size"])
    if not len(dataset):
        raise ValueError(f"inputs={inputs} holds no files to predict")
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    if cfg.threshold is not None and model.temperature is None:
        log.warning("threshold=%s on probabilities that were never calibrated (the model was trained without a "
                    "validation split, so no temperature was fitted): they tend to be overconfident", cfg.threshold)
    writer = TopKRows(dataset, model.class_names, cfg.top_k, cfg.threshold)
    trainer = inference_trainer(output_dir, callbacks=[writer])
    trainer.predict(model, dataloaders=loader, return_predictions=False)
    write_predictions(output_dir, writer.rows, writer.top_k)
    print(format_table(writer.rows, cfg.print_limit))
    failed = [row for row in writer.rows if row["error"]]
    if failed:
        log.warning("%d of %d inputs could not be predicted, e.g. %s: %s; every row, with its error, is in "
                    "predictions.csv", len(failed), len(writer.rows), failed[0]["file"], failed[0]["error"])
    log.info("%d images predicted, %d failed; predictions.csv and predictions.json in %s",
             len(writer.rows) - len(failed), len(failed), output_dir)
    return writer.rows


def write_predictions(output_dir: Path, rows: list[dict[str, Any]], top_k: int) -> None:
    """``predictions.json`` (rows as they are) and ``predictions.csv`` (one column per rank and field)."""
    write_json_atomic(output_dir / "predictions.json", {"predictions": rows})
    fields = ["class", "probability"]
    if any("group_zh" in top for row in rows for top in row["top"]):
        fields += ["group_zh", "group_en"]
    header = ["file", "error", "decision"] + [f"top{rank}_{field}" for rank in range(1, top_k + 1) for field in fields]
    with (output_dir / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in rows:
            flat = {"file": row["file"], "error": row["error"], "decision": row["decision"]}
            for rank, top in enumerate(row["top"], start=1):
                flat.update({f"top{rank}_{field}": top.get(field, "") for field in fields})
            writer.writerow(flat)


def format_table(rows: list[dict[str, Any]], limit: int) -> str:
    """Console table: file, then the top classes as ``class [group] probability`` or the error; ``UNSURE`` first
    when the top probability is below the threshold."""
    lines = []
    for row in rows[:limit]:
        if row["error"]:
            result = f"ERROR {row['error']}"
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
    rows = predict(cfg)
    if all(row["error"] for row in rows):
        log.error("none of the %d inputs could be predicted; predictions.csv lists each with its error", len(rows))
        sys.exit(1)  # SystemExit passes through Hydra, which catches only Exception


if __name__ == "__main__":
    main()
