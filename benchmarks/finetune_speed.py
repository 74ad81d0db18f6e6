"""Benchmark 9: fine-tuning speed on CPU per backbone: default memory format, channels-last, + bf16, + torch.compile.

    python benchmarks/finetune_speed.py                       # lite0/1/2 at 224 px, 300 TrashNet photos, 4 sides each
    python benchmarks/finetune_speed.py --sizes 224 own       # also each backbone at its own size (240 / 260 px)
    python benchmarks/finetune_speed.py --models efficientnet_lite0 --sides default channels_last --per-class 5 \\
        --batch-size 8                                        # a smoke run

Every side is the real command line, ``python -m garbage_lit.train experiment=finetune ...`` in a fresh
process, on the same ``--per-class`` subset, with ``data.val_ratio=0 test=false`` (no evaluation in the
epochs) and ``--threads`` torch threads. Epoch 0 is the preset's linear probe (backbone frozen); the
fine-tuning epochs (1 onwards) train the whole network, and they are what is timed:

* default: ``callbacks.channels_last=null``, fp32 (the shipped behaviour before channels-last was a default);
* channels_last: the default callbacks, fp32;
* channels_last_bf16: ``++trainer.precision=bf16-mixed`` as well (bf16 autocast on the CPU);
* compile: channels_last_bf16 with the backbone compiled by ``torch.compile`` (``nn.Module.compile``, in
  a callback added for this benchmark); its compilations fall into the first steps of each phase.

A step is the time between two consecutive batch ends (data loading, forward, backward, optimizer
step and hooks), in wall time and in the process's CPU time (all threads; on a shared machine the CPU time
moves far less with the load than the wall time, but OpenMP threads spinning at a barrier count in it).
Each side's median fine-tuning step counts, so one-time costs (the first backward's primitive creation,
compilation) and load spikes stay out of it; the epoch printed is that median times the steps in an
epoch. The one-time costs show in the first step and the process wall time, also printed. Ratios are
against the first of ``--sides`` (default: ``default``) of the same backbone and size, in the same run.
The sides alternate ``--repeats`` times (the load of a shared machine drifts); each side's fastest
repeat counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytorch_lightning as pl

from common import default_data, machine, subset, workdir

HERE = Path(__file__).resolve().parent
SIDES = {
    "default": ["callbacks.channels_last=null"],
    "channels_last": [],
    "channels_last_bf16": ["++trainer.precision=bf16-mixed"],
    "compile": ["++trainer.precision=bf16-mixed", "+callbacks.compile._target_=finetune_speed.CompileBackbone"],
}
OWN_SIZE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


class StepClock(pl.Callback):
    """Appends every training step's wall and process CPU seconds (batch end to batch end, data loading included)
    to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path, self._last = Path(path), (0.0, 0.0)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        now = (time.perf_counter(), time.process_time())
        with self.path.open("a") as handle:
            handle.write(json.dumps({"epoch": trainer.current_epoch, "wall": now[0] - self._last[0],
                                     "cpu": now[1] - self._last[1]}) + "\n")
        self._last = now


class CompileBackbone(pl.Callback):
    """``torch.compile`` the backbone in place before training (the ``compile`` side)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.backbone.compile()


def run_side(side: str, model: str, size: int | None, args: argparse.Namespace, data: Path, work: Path,
             repeat: int) -> dict:
    """One real training run of ``side``; its fine-tuning steps, process wall time and the load around it."""
    name = f"{model}_{size or 'own'}_{side}_{repeat}"
    steps_file = work / f"{name}.steps.jsonl"
    sizes = [f"data.image_size={size}", f"data.resize_size={round(size * 256 / 224)}"] if size else []
    command = [sys.executable, "-m", "garbage_lit.train", "experiment=finetune", f"model={model}", "data=folder",
               f"data.root={data}", "data.val_ratio=0", "test=false", f"epochs={args.epochs}",
               f"batch_size={args.batch_size}", f"threads={args.threads}", *sizes, *SIDES[side],
               "+callbacks.step_clock._target_=finetune_speed.StepClock", f"+callbacks.step_clock.path={steps_file}",
               f"cache.dir={work / 'cache'}", f"hydra.run.dir={work / name}",
               "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    print("$", " ".join(command[1:]), flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    steps = [json.loads(line) for line in steps_file.read_text().splitlines()]
    finetune = [step for step in steps if step["epoch"] >= 1]
    row = {"model": model, "input": size or OWN_SIZE.get(model, "own"), "side": side, "repeat": repeat,
           "step_s": statistics.median(step["wall"] for step in finetune),
           "cpu_step_s": statistics.median(step["cpu"] for step in finetune),
           "steps_per_epoch": sum(1 for step in steps if step["epoch"] == 1),
           "first_finetune_step_s": finetune[0]["wall"], "wall_s": wall,
           "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--per-class", type=int, default=50, help="images per class (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1",
                                                        "efficientnet_lite2"])
    parser.add_argument("--sizes", nargs="+", default=["224"],
                        help="input sizes: pixels (resize = size x 256/224) or 'own' (the backbone's default)")
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    parser.add_argument("--epochs", type=int, default=2, help="epoch 0 is the linear probe; the later ones are timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of every side (the fastest counts)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    work = args.out or workdir("finetune_speed")
    work.mkdir(parents=True, exist_ok=True)
    data = subset(args.data, args.per_class, work)
    print(f"machine: {machine()}\ndata: {data}\nruns: {work}, threads={args.threads} each", flush=True)

    rows = []
    for model in args.models:
        for size in args.sizes:
            pixels = None if size == "own" else int(size)
            if size == "own" and str(OWN_SIZE.get(model)) in args.sizes:
                continue  # its own size is already measured
            runs = [run_side(side, model, pixels, args, data, work, repeat)
                    for repeat in range(args.repeats) for side in args.sides]  # alternating: load drifts
            for side in args.sides:  # each side's fastest repeat, by wall and by CPU time
                repeats = [r for r in runs if r["side"] == side]
                rows.append({**min(repeats, key=lambda r: r["step_s"]),
                             "cpu_step_s": min(r["cpu_step_s"] for r in repeats)})
            (work / "results.json").write_text(json.dumps(rows, indent=1))

    print(f"\nmachine at the end: {machine()}")
    print("\n| backbone | input | side | fine-tuning step: wall (vs default) | CPU time (vs default) | epoch "
          "(steps) | first step | process wall | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        default = next(r for r in rows if (r["model"], r["input"], r["side"]) == (row["model"], row["input"],
                                                                                  args.sides[0]))
        print(f"| {row['model']} | {row['input']} px | {row['side']} | {row['step_s']:.2f} s "
              f"({default['step_s'] / row['step_s']:.2f}x) | {row['cpu_step_s']:.2f} s "
              f"({default['cpu_step_s'] / row['cpu_step_s']:.2f}x) | {row['step_s'] * row['steps_per_epoch']:.0f} s "
              f"({row['steps_per_epoch']}) | {row['first_finetune_step_s']:.0f} s | {row['wall_s']:.0f} s | "
              f"{row['load']} |")


if __name__ == "__main__":
    main()
