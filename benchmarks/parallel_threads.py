"""Benchmark 6: a 2-job parallel CPU sweep with the cores divided between the jobs (the default) and without.

    nice -n 19 python benchmarks/parallel_threads.py                 # 60 sample photos, 160 px, 2 epochs
    python benchmarks/parallel_threads.py --per-class 4 --epochs 1   # a smoke run

Both sides run the real command line, ``python -m garbage_lit.train -m hydra/launcher=parallel
hydra.launcher.n_jobs=2`` with two learning rates (frozen backbone, no caches, so every step is
backbone compute). "divided" is the default: each job gets ``cores // 2`` torch threads. "not
divided" passes ``threads=<cores>``, what each job would use on its own, so the two jobs run
``2 x cores`` threads on ``cores`` cores. The sides alternate ``--repeats`` times; the fastest of each counts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import parser as common_parser
from common import report, subset, workdir

REPO = Path(__file__).resolve().parents[1]


def sweep(name: str, extra: list[str], args, data: Path, work: Path) -> tuple[float, list[str]]:
    """Wall time of the 2-job sweep and the thread counts its jobs logged."""
    folder = work / name
    command = [sys.executable, "-m", "garbage_lit.train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
               f"model={args.model}", "data=folder", f"data.root={data}", "lr=0.003,0.01", f"epochs={args.epochs}",
               f"batch_size={args.batch_size}", f"data.image_size={args.image_size}",
               f"data.resize_size={args.resize_size}", "cache.features=false", f"cache.dir={work / 'cache'}",
               f"hydra.sweep.dir={folder}", "+trainer.enable_progress_bar=false",
               "trainer.enable_model_summary=false", *extra]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    seconds = time.perf_counter() - start
    logged = [m.group(0) for log in sorted(folder.glob("*/*.log"))
              for m in re.finditer(r"torch uses \d+ CPU threads[^\n]*", log.read_text())]
    return seconds, logged


def main() -> None:
    parser = common_parser(__doc__, per_class=10, model="efficientnet_lite0")
    parser.set_defaults(image_size=160, resize_size=182, batch_size=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = workdir("threads")
    data = subset(args.data, args.per_class, work)
    cores = os.cpu_count() or 1
    sides = {"divided (default)": [], "not divided": [f"threads={cores}"]}
    times: dict[str, list[float]] = {name: [] for name in sides}
    logs: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        for name, extra in sides.items():
            seconds, logs[name] = sweep(f"{name.split()[0]}_{repeat}", extra, args, data, work)
            times[name].append(seconds)
            print(f"{name}: {seconds:.1f} s", flush=True)
    rows = [(name, f"{min(t):7.1f} s (runs: {', '.join(f'{s:.1f}' for s in t)}); "
                   f"jobs logged: {sorted(set(logs[name]))}")
            for name, t in times.items()]
    ratio = min(times["not divided"]) / min(times["divided (default)"])
    report(f"2-job parallel CPU sweep, {args.model}, {data}, {args.image_size}px, {args.epochs} epochs, {cores} cores",
           rows, "not divided / divided wall time", ratio)
    print(f"  work folder: {work}")


if __name__ == "__main__":
    main()
