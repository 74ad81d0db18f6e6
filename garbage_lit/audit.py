"""Audit a data set's labels: find the photos whose label is likely wrong, without ever changing the data set.

    python -m garbage_lit.audit data=folder data.root=/path/to/trashnet

Each photo is scored by a head trained on the frozen backbone's features of the other photos (K-fold
cross-validation, :mod:`garbage_lit.insight.label_issues`), and confident learning flags the photos whose label
those out-of-sample probabilities contradict; a photo stored byte for byte in two classes is always a suspect.
The output folder gets ``label_issues.csv`` (the suspects, most doubtful first, with their given and suggested
labels), ``label_issues.png`` (the top suspects' photos), ``exclude.txt`` (the suspects as a ``data.exclude``
list: review it, then train with ``data.exclude=.../exclude.txt``) and ``audit.json`` (the counts).

Features come from the feature cache split by split, un-augmented, exactly as a training run with the same
``data.*`` settings and ``data.rotation_degrees=0`` reads them, so the two share one cache fill.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from garbage_lit.config import CONFIG_DIR
from garbage_lit.data.datamodule import GarbageDataModule
from garbage_lit.data.exclude import write_exclusions
from garbage_lit.data.samples import Sample, relative_file
from garbage_lit.data.split import SPLITS
from garbage_lit.errors import ConfigError
from garbage_lit.features.datamodule import FeatureDataModule
from garbage_lit.insight.fonts import class_labels
from garbage_lit.insight.gallery import Tile, class_caption, gallery_png
from garbage_lit.insight.label_issues import (
    CONFIDENT_LEARNING,
    IDENTICAL_COPY,
    Suspect,
    find_suspects,
    out_of_sample_probabilities,
    require_insight_packages,
)
from garbage_lit.models.classifier import GarbageClassifier
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.records.folder import AUDIT_FILE, EXCLUDE_FILE, LABEL_ISSUES_FILE, LABEL_ISSUES_GALLERY
from garbage_lit.records.tables import write_csv
from garbage_lit.run.commands import cli as command_line
from garbage_lit.run.commands import one_line_errors
from garbage_lit.run.components import data_module
from garbage_lit.run.launch import start_command

log = logging.getLogger(__name__)

register_resolvers()

ISSUE_COLUMNS = ("rank", "file", "given", "suggested", "given_probability", "suggested_probability", "split",
                 "reasons")


def audit(cfg: DictConfig) -> dict[str, Any]:
    """Score every photo of ``cfg.data`` out of sample, find the suspects, write and return the audit's summary."""
    require_insight_packages()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images = data_module(cfg, image_cache=False)
    if images.augments_training:
        raise ConfigError(f"the audit scores photos as a model sees them at test time, but data.rotation_degrees="
                          f"{cfg.data.rotation_degrees} and data.augment={cfg.data.augment} augment the training "
                          f"split; set data.rotation_degrees=0 data.augment=paper")
    images.setup("test")
    pl.seed_everything(cfg.seed, verbose=False)  # a backbone without pretrained weights starts the same every time
    model = instantiate(cfg.model, num_classes=images.num_classes, class_names=images.class_names)
    samples, where, matrix = split_features(images, model, cfg.cache.dir)
    labels = np.array([s.label for s in samples])

    from threadpoolctl import threadpool_limits  # scikit-learn's; its BLAS keeps to `threads` too

    with threadpool_limits(limits=cfg.threads):
        probs = out_of_sample_probabilities(matrix, labels, images.num_classes, cfg.folds, cfg.regularization,
                                            cfg.seed)
    suspects = find_suspects(probs, labels, conflicting_copies(images, samples), cfg.filter_by)
    names = images.class_names
    files = [relative_file(s.path, images.root) for s in samples]
    _write_issues(output_dir / LABEL_ISSUES_FILE, suspects, files, where, names)
    excluded = suspects if cfg.exclude_top is None else suspects[:cfg.exclude_top]
    write_exclusions(output_dir / EXCLUDE_FILE, [files[s.index] for s in excluded],
                     [f"photos garbage_lit.audit suspects of a wrong label under {images.root}, most doubtful first",
                      "review them (label_issues.csv, label_issues.png), delete the lines to keep, then train with",
                      f"data.exclude={output_dir.resolve() / EXCLUDE_FILE}"])
    shown = suspects[:cfg.gallery_size]
    png = gallery_png([("suspected labels, most doubtful first", suspect_tiles(shown, samples, names))], names)
    (output_dir / LABEL_ISSUES_GALLERY).write_bytes(png)
    summary = {"data": str(images.root), "images": len(samples), "classes": names, "backbone": model.hparams.arch,
               "weights": model.weights_source, "folds": cfg.folds, **_counts(probs, labels, suspects, names),
               "config": OmegaConf.to_container(cfg, resolve=True)}
    write_json_atomic(output_dir / AUDIT_FILE, summary)
    print(format_audit(summary, suspects, files, names, cfg.print_limit))
    log.info("audit written to %s", output_dir)
    return summary


def split_features(images: GarbageDataModule, model: GarbageClassifier,
                   cache_dir: str | Path) -> tuple[list[Sample], list[str], np.ndarray]:
    """Every photo of ``images``' splits, the split it sits in, and its features under ``model``'s backbone, taken
    from (or put into) the feature cache split by split, as a training run reads them."""
    features = FeatureDataModule(images, model.backbone, model.hparams.arch, views=1, cache_dir=cache_dir)
    splits = [split for split in SPLITS if images.splits[split]]
    samples = [sample for split in splits for sample in images.splits[split]]
    where = [split for split in splits for _ in images.splits[split]]
    return samples, where, np.concatenate([features.features(split).features[0].cpu().numpy() for split in splits])


def _counts(probs: np.ndarray, labels: np.ndarray, suspects: list[Suspect], class_names: list[str]) -> dict[str, Any]:
    """How good the held-out heads are, and how many suspects there are, by reason and by (given, suggested)."""
    return {
        "cross_validated_accuracy": float((probs.argmax(axis=1) == labels).mean()),
        # the held-out heads' negative log likelihood: how trustworthy their probabilities are (lower is better)
        "cross_validated_log_loss": float(-np.log(probs[np.arange(len(labels)), labels].clip(1e-12)).mean()),
        "suspects": len(suspects),
        "by_reason": {CONFIDENT_LEARNING: sum(s.confident_learning for s in suspects),
                      IDENTICAL_COPY: sum(bool(s.copy_classes) for s in suspects)},
        "given_to_suggested": dict(Counter(f"{class_names[s.given]} -> {class_names[s.suggested]}"
                                           for s in suspects).most_common()),
    }


def conflicting_copies(images: GarbageDataModule, samples: list[Sample]) -> dict[int, list[str]]:
    """Index in ``samples`` -> the other classes a byte-identical copy of that photo is labelled in."""
    position = {s.path: i for i, s in enumerate(samples)}
    scanned = images.scan.samples
    copies: dict[int, list[str]] = {}
    for group in images.index.duplicates:
        if not group.cross_class:
            continue
        for member in group.members:
            others = {images.class_names[scanned[m].label] for m in group.members} - \
                     {images.class_names[scanned[member].label]}
            if scanned[member].path in position:
                copies[position[scanned[member].path]] = sorted(others)
    return copies


def suspect_tiles(suspects: list[Suspect], samples: list[Sample], class_names: list[str]) -> list[Tile]:
    """A gallery tile per suspect: given label, suggested label and how sure the held-out head is of each."""
    names = class_labels(class_names)
    return [Tile(samples[s.index].path,
                 "\n".join([class_caption("given", names.of(s.given)) + f" ({s.label_quality:.2f})",
                            class_caption("suggested", names.of(s.suggested))
                            + f" ({s.suggested_probability:.2f})",
                            samples[s.index].path.name[:28]]))
            for s in suspects]


def _write_issues(path: Path, suspects: list[Suspect], files: list[str], splits: list[str],
                  class_names: list[str]) -> None:
    write_csv(path, [dict(zip(ISSUE_COLUMNS, (rank, files[s.index], class_names[s.given], class_names[s.suggested],
                                              f"{s.label_quality:.4f}", f"{s.suggested_probability:.4f}",
                                              splits[s.index], "; ".join(s.reasons))))
                     for rank, s in enumerate(suspects, start=1)], ISSUE_COLUMNS)


def format_audit(summary: dict[str, Any], suspects: list[Suspect], files: list[str], class_names: list[str],
                 limit: int) -> str:
    """The audit as console text: counts, then the most doubtful suspects."""
    lines = [f"{summary['suspects']} of {summary['images']} photos under {summary['data']} are suspects "
             f"(the {summary['folds']}-fold heads' held-out accuracy {summary['cross_validated_accuracy']:.4f}, "
             f"log loss {summary['cross_validated_log_loss']:.4f})",
             "by reason: " + ", ".join(f"{k} {v}" for k, v in summary["by_reason"].items()),
             "given -> suggested: " + ", ".join(f"{k} {v}" for k, v in summary["given_to_suggested"].items()), ""]
    lines += [f"{rank:>4}  {files[s.index]}  given {class_names[s.given]} ({s.label_quality:.3f})  suggested "
              f"{class_names[s.suggested]} ({s.suggested_probability:.3f})  {'; '.join(s.reasons)}"
              for rank, s in enumerate(suspects[:limit], start=1)]
    if len(suspects) > limit:
        lines.append(f"... {len(suspects) - limit} more in {LABEL_ISSUES_FILE}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="audit")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        start_command(cfg)
        audit(cfg)


def cli() -> None:
    """The command line (``garbage-lit-audit``, ``python -m garbage_lit.audit``)."""
    command_line(main, "audit")


if __name__ == "__main__":
    cli()
