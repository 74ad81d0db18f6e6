"""Benchmark 9: fine-tuning speed on CPU: the framework's training step before and after the speed work, each
setting alone, and a plain PyTorch loop on the same model, data, precision and format (the floor).

    python benchmarks/finetune_speed.py                        # lite0 at 224 px, 300 TrashNet photos, every side
    python benchmarks/finetune_speed.py --models efficientnet_lite2 --sides default plain
    python benchmarks/finetune_speed.py --sides default plain --per-class 5 --batch-size 8 --repeats 1  # a smoke run

Every side but ``plain`` is the real command line, ``python -m garbage_lit.train experiment=finetune ...`` in a fresh
process, on the same ``--per-class`` subset, with ``data.val_ratio=0 test=false`` (no evaluation in the epochs) and
``--threads`` torch threads. Epoch 0 is the preset's linear probe (backbone frozen); the fine-tuning epochs (1
onwards) train the network, and they are what is timed:

* before: ``experiment=finetune`` as it was at ``--before`` (a git worktree of that commit; default: the commit
  before the speed work, whose default was fp32, channels-last);
* default: ``experiment=finetune`` as it is now;
* fp32: the default with ``trainer.precision=32-true`` (what bf16 with float32 depthwise convolutions gives);
* all_stages: the default with ``model.frozen_stages=0``, every stage fine-tuned (the default until 2026-12-07;
  the default keeps the stem and the first two stages frozen);
* workers1: the default with ``data.num_workers=1`` (decoding and augmentation in a worker process);
* px192: the default trained at 192 px (resize 219);
* plain: a plain PyTorch loop (no Lightning) over the default's model (the same backbone build, channels-last,
  its frozen stages), data (the same training images, transforms, batch size and loader workers), precision
  (bf16 autocast when the default uses it), optimizer (AdamW) and loss (label smoothing 0.1).

A step is the time between two consecutive batch ends (data loading, forward, backward, optimizer step and hooks),
in wall time and in the process's CPU time (all threads). Each side's median step counts (the plain loop skips its
first two), so one-time costs and load spikes stay out of it; images/s is the batch size over it. Ratios are against
``before`` and against ``plain`` of the same backbone, in the same run. The sides alternate ``--repeats`` times;
each side's fastest repeat counts. Run it alone on the machine (nothing else busy), and write ``uptime`` beside it.
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
import torch

from common import default_data, machine, subset, workdir

HERE = Path(__file__).resolve().parent
BEFORE = "6662d78"  # the last commit before the speed work (issue 26)
SIDES = {
    "before": [],
    "default": [],
    "fp32": ["trainer.precision=32-true"],
    "all_stages": ["model.frozen_stages=0"],
    "workers1": ["data.num_workers=1"],
    "px192": ["data.image_size=192", "data.resize_size=219"],
    "plain": [],
}


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


def train_command(side: str, model: str, size: int, args: argparse.Namespace, data: Path) -> list[str]:
    """The side's ``python -m garbage_lit.train`` overrides (``plain`` reads the default's config from them)."""
    sizes = [f"data.image_size={size}", f"data.resize_size={round(size * 256 / 224)}"]
    return ["experiment=finetune", f"model={model}", "data=folder", f"data.root={data}", "data.val_ratio=0",
            "test=false", f"epochs={args.epochs}", f"batch_size={args.batch_size}", f"threads={args.threads}",
            *sizes, *SIDES[side]]


def run_side(side: str, model: str, size: int, args: argparse.Namespace, data: Path, work: Path,
             repeat: int) -> dict:
    """One run of ``side`` in a fresh process; its median step, process wall time and the load around it."""
    name = f"{model}_{size}_{side}_{repeat}"
    steps_file = work / f"{name}.steps.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    if side == "plain":
        command = [sys.executable, __file__, "--plain-loop", str(steps_file), "--", *train_command("default", model,
                                                                                                   size, args, data)]
    else:
        command = [sys.executable, "-m", "garbage_lit.train", *train_command(side, model, size, args, data),
                   "+callbacks.step_clock._target_=finetune_speed.StepClock",
                   f"+callbacks.step_clock.path={steps_file}",
                   f"{'paths.cache_dir' if side == 'before' else 'cache.dir'}={work / 'cache'}",  # renamed since
                   f"hydra.run.dir={work / name}",
                   "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
        if side == "before":
            env["PYTHONPATH"] = os.pathsep.join([str(before_checkout(args.before, work)), env["PYTHONPATH"]])
    print("$", " ".join(command[1:]), flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=work)  # not a checkout: its code
    wall = time.perf_counter() - start
    steps = [json.loads(line) for line in steps_file.read_text().splitlines()]
    timed = [step for step in steps if step["epoch"] >= 1]
    row = {"model": model, "input": size, "side": side, "repeat": repeat,
           "step_s": statistics.median(step["wall"] for step in timed),
           "cpu_step_s": statistics.median(step["cpu"] for step in timed),
           "steps": len(timed), "wall_s": wall, "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"}
    print(json.dumps(row), flush=True)
    return row


def before_checkout(commit: str, work: Path) -> Path:
    """A git worktree of ``commit`` (the code of the ``before`` side), made once per run of this benchmark."""
    folder = work / f"before_{commit}"
    if not folder.exists():
        subprocess.run(["git", "-C", str(HERE.parent), "worktree", "add", "--detach", str(folder), commit],
                       check=True, capture_output=True)
        # Its configs, not the installed package's (an editable install maps garbage_lit.conf to this checkout's).
        (folder / "garbage_lit" / "conf").symlink_to(folder / "conf")
    return folder


def plain_loop(steps_file: Path, overrides: list[str]) -> None:
    """The floor: the default side's fine-tuning as a plain PyTorch loop, its steps timed like StepClock's (the
    first two steps as epoch 0, the rest as epoch 1)."""
    from hydra import compose, initialize_config_dir
    from torch import nn
    from torch.utils.data import DataLoader

    from garbage_lit.config import CONFIG_DIR
    from garbage_lit.data.datasets import ImageDataset
    from garbage_lit.data.index import DataIndex
    from garbage_lit.data.transforms import build_transforms
    from garbage_lit.models.backbones import backbone_stages, create_backbone
    from garbage_lit.models.resolvers import register_resolvers
    from garbage_lit.run.launch import set_threads

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, "data.output_dir=null"])
    set_threads(cfg.threads)
    torch.manual_seed(0)
    d = cfg.data
    samples = DataIndex.from_settings(d).build(training=False).splits["train"]
    transform = build_transforms(True, d.image_size, d.resize_size, d.rotation_degrees, d.mean, d.std, d.augment,
                                 d.interpolation)
    loader = DataLoader(ImageDataset(samples, transform), batch_size=cfg.batch_size, shuffle=True,
                        num_workers=d.num_workers)
    backbone = create_backbone(cfg.model.arch, "imagenet")
    model = nn.Sequential(backbone.module, nn.Linear(backbone.feature_dim, 6)).to(memory_format=torch.channels_last)
    model.train()
    for stage in backbone_stages(backbone.module, cfg.model.arch)[:cfg.model.frozen_stages]:
        stage.requires_grad_(False)
        stage.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.model.label_smoothing)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    last = (time.perf_counter(), time.process_time())
    with steps_file.open("w") as handle:
        for epoch in range(cfg.epochs):
            for images, labels in loader:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = criterion(model(images.contiguous(memory_format=torch.channels_last)), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                now = (time.perf_counter(), time.process_time())
                handle.write(json.dumps({"epoch": epoch, "wall": now[0] - last[0], "cpu": now[1] - last[1]}) + "\n")
                last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--per-class", type=int, default=50, help="images per class (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224])
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    parser.add_argument("--before", default=BEFORE, help="the commit whose experiment=finetune is the 'before' side")
    parser.add_argument("--epochs", type=int, default=2, help="epoch 0 is the linear probe; the later ones are timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of every side (the fastest counts)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--plain-loop", type=Path, default=None, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.plain_loop:
        plain_loop(args.plain_loop, [o for o in overrides if o != "--"])
        return
    work = args.out or workdir("finetune_speed")
    work.mkdir(parents=True, exist_ok=True)
    data = subset(args.data, args.per_class, work)
    print(f"machine: {machine()}\ndata: {data}\nruns: {work}, threads={args.threads} each", flush=True)

    rows = []
    for model in args.models:
        for size in args.sizes:
            runs = [run_side(side, model, size, args, data, work, repeat)
                    for repeat in range(args.repeats) for side in args.sides]  # alternating: load drifts
            for side in args.sides:  # each side's fastest repeat, by wall and by CPU time
                repeats = [r for r in runs if r["side"] == side]
                rows.append({**min(repeats, key=lambda r: r["step_s"]),
                             "cpu_step_s": min(r["cpu_step_s"] for r in repeats)})
            (work / "results.json").write_text(json.dumps(rows, indent=1))

    print(f"\nmachine at the end: {machine()}")
    print("\n| backbone | input | side | step: wall | images/s | vs before | vs plain loop | CPU time | "
          "timed steps | process wall | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        same = {r["side"]: r for r in rows if (r["model"], r["input"]) == (row["model"], row["input"])}
        versus = {side: f"{same[side]['step_s'] / row['step_s']:.2f}x" if side in same else "-"
                  for side in ("before", "plain")}
        print(f"| {row['model']} | {row['input']} px | {row['side']} | {row['step_s']:.2f} s | "
              f"{args.batch_size / row['step_s']:.1f} | {versus['before']} | {versus['plain']} | "
              f"{row['cpu_step_s']:.2f} s | {row['steps']} | {row['wall_s']:.0f} s | {row['load']} |")


if __name__ == "__main__":
    main()
