"""Benchmark 10: what exact resume adds to a checkpoint, in bytes and in write time.

    python benchmarks/resume_cost.py                  # efficientnet_lite0 fine-tune with EMA, 224 px, 20 images a class
    python benchmarks/resume_cost.py --image-size 32  # a smoke run

A real ``python -m garbage_lit.train experiment=finetune callbacks/weight_averaging=ema`` run, fine-tuning the whole
backbone from the first step, writes a mid-epoch checkpoint (every 2 steps). It is read back and split into what
exact resume added (the random generators' states and the set-up, ``RandomStates``; the loader's position; the
epoch's training metrics so far) and the rest (weights, EMA average, optimizer, loops). Each is serialized with
``torch.save`` into memory ``--repeats`` times, alternating, and its median time counts (a disk adds its own write
time, in proportion to the bytes).
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import machine, parser, report, subset, workdir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from garbage_lit.models.classifier import TRAIN_METRICS_SO_FAR  # noqa: E402

RANDOM_STATES = "RandomStates"
LOADER_STATE = "combined_loader"


def save_seconds(payload: object) -> float:
    start = time.perf_counter()
    torch.save(payload, io.BytesIO())
    return time.perf_counter() - start


def size(payload: object) -> int:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()


def resume_parts(checkpoint: dict) -> tuple[dict, dict]:
    """``checkpoint`` split into (what exact resume added, the rest)."""
    rest = dict(checkpoint)
    callbacks = dict(rest.pop("callbacks"))
    fit_loop = dict(rest["loops"]["fit_loop"])
    loop_state = dict(fit_loop["state_dict"])
    added = {RANDOM_STATES: callbacks.pop(RANDOM_STATES),
             LOADER_STATE: loop_state.pop(LOADER_STATE, None),
             TRAIN_METRICS_SO_FAR: rest.pop(TRAIN_METRICS_SO_FAR, None)}
    fit_loop["state_dict"] = loop_state
    rest["callbacks"], rest["loops"] = callbacks, {**rest["loops"], "fit_loop": fit_loop}
    return added, rest


def main() -> None:
    args = parser(__doc__, per_class=20, model="efficientnet_lite0")
    args.add_argument("--repeats", type=int, default=15)
    args = args.parse_args()
    work = workdir("resume_cost")
    data = subset(args.data, args.per_class, work)
    run = work / "run"
    done = subprocess.run([
                    sys.executable, "-m", "garbage_lit.train", "data=folder", f"data.root={data}",
                    "experiment=finetune", "callbacks.backbone_finetuning.unfreeze_backbone_at_epoch=0",
                    "scheduler.warmup_epochs=0",
                    f"model={args.model}", "callbacks/weight_averaging=ema", "epochs=1",
                    f"batch_size={args.batch_size}", f"data.image_size={args.image_size}",
                    f"data.resize_size={args.resize_size}", "data.val_ratio=0",
                    "callbacks.mid_epoch_checkpoint.every_n_train_steps=2",
                    "callbacks.mid_epoch_checkpoint.train_time_interval=null", "+trainer.limit_train_batches=3",
                    f"hydra.run.dir={run}"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    checkpoint = torch.load(run / "checkpoints" / "mid-epoch.ckpt", map_location="cpu", weights_only=False)
    added, rest = resume_parts(checkpoint)
    times: dict[str, list[float]] = {"whole": [], "without": [], "added": []}
    for _ in range(args.repeats):
        times["whole"].append(save_seconds(checkpoint))
        times["without"].append(save_seconds(rest))
        times["added"].append(save_seconds(added))
    median = {side: statistics.median(values) for side, values in times.items()}
    whole, extra = size(checkpoint), size(added)
    report(f"What exact resume adds to a mid-epoch checkpoint ({args.model}, {args.image_size} px, EMA)", [
        ("checkpoint", f"{whole / 1e6:.2f} MB, saved in {median['whole'] * 1e3:.1f} ms"),
        ("without the resume state", f"{size(rest) / 1e6:.2f} MB, saved in {median['without'] * 1e3:.1f} ms"),
        ("the resume state alone", f"{extra / 1e3:.1f} kB, saved in {median['added'] * 1e3:.2f} ms "
                                   f"({', '.join(f'{k} {size(v) / 1e3:.1f} kB' for k, v in added.items())})"),
    ], "checkpoint size with / without", whole / size(rest))
    print(f"  repeats: {args.repeats}; machine: {machine()}")


if __name__ == "__main__":
    main()
