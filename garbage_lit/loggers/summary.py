"""A finished run as its folder records it, in the shapes trackers take: hyperparameters, the flat config, tags,
the final test's confusion matrix (drawn once, as one PNG for every tracker) and per-class table, the model file."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from garbage_lit.insight.confusion import confusion_figure
from garbage_lit.insight.figures import figure_png
from garbage_lit.models.metrics import per_class_table
from garbage_lit.records.folder import TEST, metric_key, read_metrics

# Shown when the config has them (momentum only with SGD, the backbone's lr ratio only when fine-tuning).
_OPTIONAL_HPARAMS = (("weight_decay", "optim.weight_decay"), ("momentum", "optim.momentum"),
                     ("label_smoothing", "model.label_smoothing"),
                     ("backbone_lr_ratio", "callbacks.backbone_finetuning.backbone_initial_ratio_lr"))
# Config sections a tracker's params leave out: where runs are logged or a search is stored, not how a model was
# trained (their URLs may hold credentials).
NOT_PARAMS = ("logger", "hparams_search")
CONFUSION_TAG = metric_key(TEST, "confusion_matrix")
PER_CLASS_TAG = metric_key(TEST, "per_class")


def run_hparams(cfg: DictConfig, weights_source: str) -> dict[str, Any]:
    """The flat hyperparameters that tell the jobs of a sweep apart."""
    return {
        "model": cfg.model.arch,
        "weights": weights_source,
        "freeze_backbone": cfg.model.freeze_backbone,
        "optimizer": cfg.optim.algorithm.rsplit(".", 1)[-1],
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        **{name: OmegaConf.select(cfg, key) for name, key in _OPTIONAL_HPARAMS
           if OmegaConf.select(cfg, key) is not None},
        "seed": cfg.seed,
        "scheduler": cfg.scheduler._target_.rsplit(".", 1)[-1] if cfg.get("scheduler") else "none",
        "data": f"{cfg.data.layout}:{Path(str(cfg.data.root)).name}",
    }


@dataclass
class RunSummary:
    """A finished run as its folder records it, in the shapes trackers take."""

    hparams: dict[str, Any]               # the columns a sweep is read by (model, optimizer, lr, ...)
    params: dict[str, Any]                # the flat resolved config (less the job's own paths), Hydra's group
                                          # choices (optim: adam) and hparams
    tags: dict[str, str]                  # split manifest hash, code and library versions, where it ran
    class_names: list[str]
    confusion_matrix: list[list[int]] | None  # the final test's (rows: true class), None without a final test
    model: Path | None                    # checkpoints/model.ckpt, what evaluate, predict and export take
    chosen: dict[str, str]                # how the kept epoch was chosen: chosen_on, that metric's value, epoch
    step: int
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # test/per_class: support, precision...

    def __post_init__(self) -> None:
        if self.confusion_matrix is not None:
            self.tables.setdefault(PER_CLASS_TAG, per_class_table(self.confusion_matrix, self.class_names))

    @cached_property
    def pictures(self) -> dict[str, bytes]:
        """The final test's confusion matrix as a PNG, drawn once for every tracker (``test/confusion_matrix``)."""
        if self.confusion_matrix is None:
            return {}
        return {CONFUSION_TAG: figure_png(confusion_figure(self.confusion_matrix, self.class_names))}


def run_summary(cfg: DictConfig, run_dir: Path, step: int) -> RunSummary:
    """Read the completed run in ``run_dir`` (its metrics.json) into a :class:`RunSummary`."""
    record = read_metrics(run_dir)
    final = record["final"]
    hparams = run_hparams(cfg, record["weights_source"])
    provenance = record["provenance"]
    tags = {"split_manifest_sha256": record["data"]["split_manifest_sha256"],
            "weights_source": record["weights_source"], "run_dir": str(run_dir.resolve()),
            # not the command line: a database password typed there would travel with it
            **{key: provenance[key] for key in ("git_commit", "git_dirty", "python", "host")},
            **{f"versions.{package}": v for package, v in provenance["versions"].items()}}
    chosen_on = final.get("chosen_on")
    kept = next((e for e in record.get("epochs", []) if e["epoch"] == final["epoch"]), {})
    chosen = {"chosen_on": chosen_on or "last epoch", "epoch": str(final["epoch"]),
              **({chosen_on: str(kept.get(chosen_on))} if chosen_on else {})}
    return RunSummary(hparams=hparams, params=tracker_params(cfg, run_dir, hparams),
                      tags={k: str(v) for k, v in tags.items()}, class_names=record["data"]["class_names"],
                      confusion_matrix=final.get("confusion_matrix"), chosen=chosen,
                      model=run_dir / final["checkpoint"] if final.get("checkpoint") else None, step=step)


def tracker_params(cfg: DictConfig, run_dir: Path, hparams: dict[str, Any]) -> dict[str, Any]:
    """The flat resolved config, with Hydra's group choices and ``hparams``; less NOT_PARAMS and the values inside
    the job's own folder (where it writes: they differ between any two jobs and would hide what a sweep varied)."""
    own = (str(run_dir), str(run_dir.resolve()))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = _flat({key: value for key, value in resolved.items() if key not in NOT_PARAMS})
    return {**{key: value for key, value in flat.items() if not (isinstance(value, str) and value.startswith(own))},
            **_group_choices(), **hparams}


def _group_choices() -> dict[str, Any]:
    """Hydra's choice in each config group (``optim: adam``, ``model: resnet18``); empty outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return {group: choice for group, choice in HydraConfig.get().runtime.choices.items()
            if group != "hydra" and not group.startswith("hydra/") and group not in NOT_PARAMS}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.01}}`` -> ``{"optim.lr": 0.01}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
