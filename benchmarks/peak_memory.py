"""Benchmark 4: peak memory (max RSS) of one sweep job with and without the feature cache.

    python benchmarks/peak_memory.py                  # efficientnet_lite0, 224 px, 8 images per class, 2 epochs
    python benchmarks/peak_memory.py --per-class 3 --epochs 1 --image-size 64   # a quick smoke run

Each job is a fresh ``python -m garbage_lit.train`` process; its peak resident set size comes from
``wait4``. The cached job is measured twice: the first job of a sweep (it fills the cache, so it
also runs the backbone) and a later job (cache warm: only the head trains).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import parser as common_parser
from common import report, subset, workdir


def peak_rss_mb(args: argparse.Namespace, data: Path, work: Path, name: str, cached: bool) -> float:
    command = [sys.executable, "-m", "garbage_lit.train", f"model={args.model}", "data=folder", f"data.root={data}",
               f"epochs={args.epochs}", f"batch_size={args.batch_size}", f"data.image_size={args.image_size}",
               f"data.resize_size={args.resize_size}", f"cache.features={str(cached).lower()}",
               f"cache.dir={work / 'cache'}", f"hydra.run.dir={work / name}",
               "+trainer.enable_progress_bar=false"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = common_parser(__doc__, per_class=8, model="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    work = workdir("memory")
    data = subset(args.data, args.per_class, work)
    uncached = peak_rss_mb(args, data, work, "uncached", cached=False)
    filling = peak_rss_mb(args, data, work, "cached_fill", cached=True)
    warm = peak_rss_mb(args, data, work, "cached_warm", cached=True)
    rows = [("uncached job", f"{uncached:8.0f} MB peak RSS"),
            ("cached job, filling the cache", f"{filling:8.0f} MB peak RSS"),
            ("cached job, cache warm", f"{warm:8.0f} MB peak RSS")]
    ratio = warm / uncached
    report(f"peak memory of one job: {args.model}, {args.image_size}px, batch {args.batch_size}, "
           f"{args.per_class} images per class of {args.data}, {args.epochs} epochs",
           rows, "cached (warm) / uncached peak RSS", ratio)


if __name__ == "__main__":
    main()
