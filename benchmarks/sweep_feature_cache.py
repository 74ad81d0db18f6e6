"""Benchmark 1: a paper-style sweep (frozen backbone, jobs x epochs) with and without the feature cache.

    python benchmarks/sweep_feature_cache.py                      # 8 jobs x 10 epochs, ~11 min on 2 CPUs
    python benchmarks/sweep_feature_cache.py --uncached-jobs 0    # measure all 8 uncached jobs (~35 min)
    python benchmarks/sweep_feature_cache.py --per-class 4 --epochs 2 --jobs 2 --batch-size 8   # a smoke run
    python benchmarks/sweep_feature_cache.py --data garbage_lit/sample_data/trashnet_mini --per-class 0 --jobs 20 \
        --epochs 1 --uncached-jobs 0 --target 5     # the 20-job sweep on the bundled sample: fixed costs weigh most

By default the uncached side runs 2 of the 8 jobs and charges the other 6 the measured epoch time
(printed as EXTRAPOLATED): every uncached job repeats the same image work, and the full run takes
over half an hour on a 2-CPU machine. 80 photos per class keep the fixed per-job cost (set-up,
checkpoints) from hiding what the cache saves; on tiny data both sides are mostly that fixed cost.

Both sides run the real command line (``python -m garbage_lit.train -m ...``, Hydra's sequential
launcher) on the same data with a fresh cache folder each, so the cached side pays for filling the
cache. Prints each side's wall time, its mean test accuracy and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from garbage_lit.records.folder import ACC, COMPLETED, TEST, metric_key, read_metrics

from common import parser as common_parser
from common import report, subset, workdir

LRS = ["0.001", "0.003", "0.01", "0.03", "0.1", "0.0003", "0.002", "0.005", "0.02", "0.05"]


def sweep(side: str, cached: bool, jobs: int, args: argparse.Namespace, data: Path,
          work: Path) -> tuple[float, list[dict]]:
    lrs = LRS[:max(1, jobs // 2)]
    optims = "sgd,adam" if jobs > 1 else "sgd"
    command = [sys.executable, "-m", "garbage_lit.train", "-m", f"model={args.model}", "data=folder",
               f"data.root={data}", f"optim={optims}", f"lr={','.join(lrs)}", f"epochs={args.epochs}",
               f"batch_size={args.batch_size}", f"data.image_size={args.image_size}",
               f"data.resize_size={args.resize_size}", f"data.rotation_degrees={args.rotation}",
               f"cache.features={str(cached).lower()}", f"cache.feature_views={args.views}",
               f"cache.dir={work / ('cache_' + side)}", f"hydra.sweep.dir={work / side}",
               "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, [read_metrics(folder) for folder in sorted((work / side).glob("*")) if read_metrics(folder)]


def job(metrics: dict) -> tuple[str, float]:
    """What tells the jobs of the sweep apart: optimizer and learning rate."""
    return metrics["config"]["optim"]["algorithm"].rsplit(".", 1)[-1], metrics["config"]["lr"]


def main() -> None:
    parser = common_parser(__doc__, per_class=80, model="efficientnet_lite0")
    parser.add_argument("--jobs", type=int, default=8, help="sweep size: optim {sgd,adam} x jobs/2 learning rates")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rotation", type=float, default=15, help="random rotation degrees (0: no augmentation)")
    parser.add_argument("--views", type=int, default=5, help="feature_cache_views")
    parser.add_argument("--uncached-jobs", type=int, default=2,
                        help="run only this many uncached jobs (the first of the grid) and extrapolate the rest "
                             "from their measured epoch times (0: all, no extrapolation)")
    parser.add_argument("--target", type=float, default=10, help="the speed-up the sweep should reach")
    args = parser.parse_args()
    uncached_jobs = args.uncached_jobs or args.jobs

    work = workdir("sweep")
    data = subset(args.data, args.per_class, work)
    results = {"uncached": sweep("uncached", False, uncached_jobs, args, data, work),
               "cached": sweep("cached", True, args.jobs, args, data, work)}

    both = {job(m) for m in results["uncached"][1]} & {job(m) for m in results["cached"][1]}
    rows = []
    for side, (seconds, jobs) in results.items():
        assert all(j["status"] == COMPLETED for j in jobs), f"{side}: jobs failed"
        accuracy = statistics.mean(j["final"][metric_key(TEST, ACC)] for j in jobs if job(j) in both)
        epoch = statistics.mean(j["seconds_per_epoch"] for j in jobs)
        rows.append((side, f"{seconds:8.1f} s wall measured for {len(jobs)} jobs x {args.epochs} epochs "
                           f"({seconds / len(jobs):.1f} s/job, {epoch:.2f} s/epoch); mean test acc of the "
                           f"{len(both)} jobs both sides ran: {accuracy:.3f}"))
    uncached_seconds = results["uncached"][0]
    if uncached_jobs < args.jobs:
        # Conservative: the missing jobs are charged only their epochs (train + eval), not their set-up.
        epoch_seconds = statistics.mean(sum(e["seconds"] for e in j["epochs"]) for j in results["uncached"][1])
        uncached_seconds += (args.jobs - uncached_jobs) * epoch_seconds
        rows.append(("uncached, extrapolated", f"{uncached_seconds:8.1f} s for {args.jobs} jobs = measured + "
                     f"{args.jobs - uncached_jobs} x {epoch_seconds:.1f} s (mean summed epoch time of a measured "
                     f"job; EXTRAPOLATED, not measured)"))
    ratio = uncached_seconds / results["cached"][0]
    report(f"sweep with/without feature cache: {args.model}, {data} ({results['cached'][1][0]['data']['split_sizes']}),"
           f" {args.image_size}px, rotation {args.rotation}, {args.views} views",
           rows, "speed-up (uncached / cached wall time)", ratio, f">= {args.target:g}x", ratio >= args.target)
    print(f"  work folder: {work}")


if __name__ == "__main__":
    main()
