"""The paper's reference numbers (``paper_reference.yaml``) beside a sweep's own, with the difference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from garbage_lit.records.folder import is_pretrained_source
from garbage_lit.report.jobs import JobResult
from garbage_lit.report.tables import Configuration

REFERENCE_PATH = Path(__file__).with_name("paper_reference.yaml")
RANDOM_INIT_NOTE = "ours: random init, the paper's: ImageNet (not comparable)"
NOT_IN_SWEEP = "configuration not in this sweep"


def load_reference(path: str | Path = REFERENCE_PATH) -> dict[str, Any]:
    """The reference file as plain Python, checked for the keys the comparison needs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no paper reference file (see {REFERENCE_PATH} for the format)")
    reference = OmegaConf.to_container(OmegaConf.load(path))
    for i, entry in enumerate(reference.get("configurations") or []):
        missing = [k for k in ("model", "batch_size", "optimizer", "lr", "epochs") if k not in entry]
        if missing:
            raise ValueError(f"{path}: configurations[{i}] lacks {', '.join(missing)}")
    return reference


def _matches(config: Configuration, entry: dict[str, Any]) -> bool:
    s = config.settings
    return (str(s.get("model")) == str(entry["model"]) and str(s.get("optimizer")) == str(entry["optimizer"])
            and _same_number(s.get("batch_size"), entry["batch_size"]) and _same_number(s.get("lr"), entry["lr"]))


def _same_number(ours: Any, theirs: Any) -> bool:
    try:
        return abs(float(ours) - float(theirs)) < 1e-12
    except (TypeError, ValueError):
        return False


def weights_of(jobs: Sequence[JobResult]) -> list[str]:
    """The distinct ``weights_source`` values of the completed jobs, e.g. ``imagenet (resnet18)``."""
    return sorted({str(j.metrics["weights_source"]) for j in jobs if j.metrics.get("weights_source")})


def weights_line(jobs: Sequence[JobResult], reference: dict[str, Any]) -> str:
    """One sentence: the weights our jobs used beside the paper's, loud when ours were a random init."""
    ours = weights_of(jobs)
    line = (f"Weights: ours {', '.join(ours) or 'unknown (no completed job)'}; "
            f"the paper's {reference.get('weights', '?')}.")
    if any(not is_pretrained_source(w) for w in ours):
        line += (" **Some of our jobs trained from a random init: their rows are marked and are not comparable "
                 "with the paper's ImageNet backbone.**")
    return line


def reference_label(row: dict[str, Any]) -> str:
    """``figure 6: resnet18, batch 32, SGD, lr 0.003``: a reference configuration as the report names it."""
    return f"{row.get('figure') or 'reference'}: {row['model']}, batch {row['batch_size']}, {row['optimizer']}, " \
           f"lr {row['lr']}"


def comparison_table(configs: Sequence[Configuration], reference: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per reference configuration, epoch and metric: paper, ours (seed mean), ours - paper.

    Every reference row is kept: a configuration the sweep did not run shows ``ours`` as None and
    ``note`` says so, as does a reference value not yet transcribed or ours from a random init.
    """
    rows = []
    for entry in reference.get("configurations") or []:
        matching = [c for c in configs if _matches(c, entry)]
        weights = weights_of([j for c in matching for j in c.completed])
        for epoch, values in sorted((entry.get("epochs") or {}).items(), key=lambda item: int(item[0])):
            for metric, paper in (values or {}).items():
                ours_values = [v for c in matching for v in c.epoch_values(int(epoch), metric)]
                ours = sum(ours_values) / len(ours_values) if ours_values else None
                notes = [entry["note"]] if entry.get("note") else []
                if not matching:
                    notes.append(NOT_IN_SWEEP)
                elif ours is None:
                    notes.append("no completed job reached this epoch")
                if paper is None:
                    notes.append("paper value not transcribed")
                if ours is not None and any(not is_pretrained_source(w) for w in weights):
                    notes.append(RANDOM_INIT_NOTE)
                rows.append({"figure": entry.get("figure"), "model": entry["model"],
                             "batch_size": entry["batch_size"], "optimizer": entry["optimizer"], "lr": entry["lr"],
                             "epoch": int(epoch), "metric": metric, "paper": paper, "ours": ours,
                             "n": len(ours_values),
                             "difference": ours - paper if ours is not None and paper is not None else None,
                             "weights": ", ".join(weights) or None, "note": "; ".join(notes)})
    return rows
