"""What the exact-resume tests share: a fine-tune that makes every random draw a run makes, a stop at a chosen step,
and the comparison of a resumed run with one left alone."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Fine-tuning efficientnet_lite0 (dropout and drop-connect draw from the process's generator) at 32 px on strong
# augmentation, with MixUp/CutMix and an EMA of the weights: every random draw a run makes.
FINETUNE = ["debug=fast", "experiment=finetune", "model=efficientnet_lite0", "model.weights=none",
            "data.image_size=32", "data.resize_size=36", "batch_size=4", "epochs=3", "data.val_ratio=0.2",
            "data/batch_transform=mixup_cutmix", "callbacks/weight_averaging=ema",
            "callbacks.mid_epoch_checkpoint.every_n_train_steps=2",
            "callbacks.mid_epoch_checkpoint.train_time_interval=null"]
# A stop at a chosen step or epoch (add +callbacks.stopper.step=N or .epoch=N, and .signal), once per run folder.
STOPPER = ["+callbacks.stopper._target_=helpers.callbacks.StopAt",
           "+callbacks.stopper.marker=${paths.output_dir}/stopped"]


def same_run(resumed_dir: Path, reference_dir: Path) -> None:
    """Identical weights (the kept model; the trained weights and their average when an EMA ran), identical
    per-epoch metrics (all but their wall time)."""
    resumed, reference = (json.loads((d / "metrics.json").read_text()) for d in (resumed_dir, reference_dir))
    assert resumed["status"] == reference["status"] == "completed"
    rows = [[{k: v for k, v in row.items() if k != "seconds"} for row in run["epochs"]] for run in (resumed, reference)]
    assert rows[0] == rows[1]
    assert resumed["final"]["test/acc"] == reference["final"]["test/acc"]
    for name in ("model.ckpt", "last.ckpt"):
        ours, theirs = (torch.load(d / "checkpoints" / name, weights_only=True) for d in (resumed_dir, reference_dir))
        for part in ("state_dict", "current_model_state"):  # the average (EMA) and the weights it follows
            if part in theirs:
                assert ours[part].keys() == theirs[part].keys()
                for key in theirs[part]:
                    assert torch.equal(ours[part][key], theirs[part][key]), (name, part, key)
    assert resumed["resumed"] == {"exact": True, "differs": {}}
