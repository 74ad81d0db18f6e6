"""Benchmark 5: how set-up, cache fill and a cached sweep grow with the number of images, beside plain PyTorch.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/scale.py --data ../shared/data/trashnet \
        --image-size 32 --resize-size 37                           # what benchmarks/README.md reports
    python benchmarks/scale.py --sizes 60 --jobs 1 2 --epochs 1    # a smoke run
    python benchmarks/scale.py --report-only                       # table and plot from the results so far

Defaults: N = 600, 2500, 15000; J = 1, 4, 16; 224 px; images kept in /work/runs/scale_data and results
in /work/runs/scale (``--images``, ``--work``).

The images are distinct, real-looking JPEGs made from the TrashNet photos and kept in ``--images``
(made once, reused by later runs): image ``i`` comes from photo ``order[i % 2527]`` (a seeded shuffle),
cropped to 60-100% of each side at a random place, resized to 256-512 px wide and saved as JPEG
quality 70-95, all drawn from seed ``i``, so every file has its own bytes and its photo's class. The
size-N set is the first N of them (symlinks), so sets are nested and balanced like TrashNet. For each N:

* scan: ``scan_dataset`` (lists, decodes and hashes every file) cold (empty scan cache) and warm (the
  scan cache filled by the cold scan, as every sweep job after the first sees it), beside plain
  PyTorch's set-up, ``torchvision.datasets.ImageFolder(root)`` (lists the files, checks nothing).
* fill: the feature cache filled through the data module (``cache.features=true``, the train and
  test splits, one view: rotation off), beside a plain loop (``ImageFolder`` + the same eval transforms
  + ``DataLoader`` + the frozen backbone in ``inference_mode``) over the same N images; with
  ``--fill-repeats R`` each side runs R times, alternating which goes first, and the fastest counts.
* sweep: J jobs of the real command line (``python -m garbage_lit.train -m``, Hydra's sequential
  launcher, J learning rates) on the warm caches, start-up included, beside plain PyTorch: J times an
  ``nn.Linear`` head trained for the same epochs and batch size on the same cached features, then tested.

Results go to ``<work>/results.json`` after every measurement (so a run cut short keeps what it
measured); the table and ``benchmarks/scale.png`` show what was measured and mark the rest as not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torchvision
from hydra import compose, initialize_config_dir
from matplotlib.figure import Figure
from omegaconf import DictConfig, open_dict
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from garbage_lit.config import CONFIG_DIR
from garbage_lit.data.images import is_image_file
from garbage_lit.data.scan import scan_dataset
from garbage_lit.data.transforms import build_transforms
from garbage_lit.features.datamodule import FeatureDataModule
from garbage_lit.models import create_backbone
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.run.components import data_module

from common import default_data, machine

STAGES = {"scan_cold": "scan, cold", "scan_warm": "scan, warm (scan cache)", "fill": "feature cache fill"}
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("/work/runs/scale_data")


def sources(data: Path) -> list[tuple[Path, str]]:
    """Every photo of ``data`` (folder layout) with its class name, in a seeded random order."""
    photos = [(p, d.name) for d in sorted(data.iterdir()) if d.is_dir()
              for p in sorted(d.iterdir()) if is_image_file(p)]
    order = np.random.default_rng(0).permutation(len(photos))
    return [photos[i] for i in order]


def make_image(index: int, source: Path, target: Path) -> None:
    """Write image ``index``: a seeded crop of ``source``, resized and re-encoded as JPEG."""
    if target.exists():
        return
    rng = np.random.default_rng(index)
    with Image.open(source) as photo:
        image = photo.convert("RGB")
    width, height = image.size
    crop_w, crop_h = int(width * rng.uniform(0.6, 1.0)), int(height * rng.uniform(0.6, 1.0))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    image = image.crop((left, top, left + crop_w, top + crop_h))
    new_w = int(rng.integers(256, 513))
    image = image.resize((new_w, max(1, round(crop_h * new_w / crop_w))), Image.Resampling.BILINEAR)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    image.save(tmp, format="JPEG", quality=int(rng.integers(70, 96)))
    tmp.rename(target)


def image_path(out: Path, index: int, class_name: str) -> Path:
    return out / "all" / class_name / f"scale_{index:05d}.jpg"


def build(data: Path, out: Path, count: int, workers: int = 2) -> Path:
    """Make images 0..count-1 under ``out/all`` (skipping those already there); return ``out/all``."""
    photos = sources(data)
    jobs = [(i, photos[i % len(photos)][0], image_path(out, i, photos[i % len(photos)][1])) for i in range(count)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(make_image, *zip(*jobs), chunksize=64))
    return out / "all"


def subset_of(data: Path, out: Path, count: int) -> Path:
    """A folder-layout set of the first ``count`` images (symlinks into ``out/all``)."""
    photos = sources(data)
    target = out / f"n{count}"
    for i in range(count):
        source = image_path(out, i, photos[i % len(photos)][1])
        link = target / source.parent.name / source.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return target


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def compose_cfg(args: argparse.Namespace, data: Path, cache: Path) -> DictConfig:
    """The training config the sweeps run with (so the fill here fills the very cache entries they use)."""
    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides(args, data, cache), "data.output_dir=null"])
    with open_dict(cfg):
        cfg.cache.dir = str(cache)
    return cfg


def overrides(args: argparse.Namespace, data: Path, cache: Path) -> list[str]:
    return [f"model={args.model}", "data=folder", f"data.root={data}", f"data.image_size={args.image_size}",
            f"data.resize_size={args.resize_size}", "data.rotation_degrees=0", "cache.features=true",
            f"batch_size={args.batch_size}", f"epochs={args.epochs}", f"cache.dir={cache}"]


def measure_scan(data: Path, work: Path) -> dict[str, float]:
    cache = work / "scan_cache"
    plain, _ = timed(torchvision.datasets.ImageFolder, str(data))
    cold, result = timed(scan_dataset, data, "folder", cache_dir=cache)
    warm, again = timed(scan_dataset, data, "folder", cache_dir=cache)
    assert again.samples == result.samples and again.problems == result.problems
    return {"scan_cold": cold, "scan_warm": warm, "scan_plain": plain, "images": len(result.samples)}


def fill_through_data_module(args: argparse.Namespace, data: Path, cache: Path, backbone: nn.Module) -> float:
    """Seconds to fill the train and test feature caches in ``cache`` through the data module."""
    cfg = compose_cfg(args, data, cache)
    images = data_module(cfg)
    images.setup("fit")
    features = FeatureDataModule(images, backbone, args.model, cfg.cache.feature_views, cfg.cache.dir)
    start = time.perf_counter()
    features.train_dataloader()
    features.test_dataloader()
    return time.perf_counter() - start


def fill_plain(args: argparse.Namespace, data: Path, cache: Path, backbone: nn.Module) -> float:
    """Seconds for the same images through ImageFolder, the same eval transforms and the backbone."""
    cfg = compose_cfg(args, data, cache)
    transform = build_transforms(False, args.image_size, args.resize_size, 0, list(cfg.data.mean), list(cfg.data.std))
    loader = DataLoader(torchvision.datasets.ImageFolder(str(data), transform=transform), batch_size=args.batch_size)
    start = time.perf_counter()
    backbone.eval()
    with torch.inference_mode():
        features = [backbone(images).numpy() for images, _ in loader]
    seconds = time.perf_counter() - start
    assert sum(len(f) for f in features) == len(loader.dataset)
    return seconds


def measure_fill(args: argparse.Namespace, data: Path, cache: Path) -> dict[str, float]:
    """Both fills ``--fill-repeats`` times, alternating which goes first (later repeats fill fresh caches)."""
    backbone = create_backbone(args.model, "auto").module
    backbone.requires_grad_(False)
    times: dict[str, list[float]] = {"fill": [], "fill_plain": []}
    for repeat in range(args.fill_repeats):
        target = cache if repeat == 0 else cache.with_name(f"fill_repeat_{repeat}")
        sides = [("fill", fill_through_data_module), ("fill_plain", fill_plain)]
        for key, fill in sides if repeat % 2 == 0 else sides[::-1]:
            times[key].append(fill(args, data, target, backbone))
    return {key: min(values) for key, values in times.items()} | {f"{key}_runs": v for key, v in times.items()}


def plain_head_sweep(jobs: int, args: argparse.Namespace, cache: Path) -> float:
    """J plain-PyTorch jobs: read the cached features, train nn.Linear for the epochs, test."""
    train_file, test_file = sorted((cache / "features").glob("*/features.npy"), key=lambda p: -p.stat().st_size)[:2]
    start = time.perf_counter()
    for job in range(jobs):
        torch.manual_seed(job)
        train, test = np.load(train_file)[0], np.load(test_file)[0]
        x, xt = torch.from_numpy(train), torch.from_numpy(test)
        y, yt = torch.randint(6, (len(x),)), torch.randint(6, (len(xt),))  # timing only: labels do not matter
        head = nn.Linear(x.shape[1], 6)
        optim = torch.optim.SGD(head.parameters(), lr=0.003, momentum=0.9)
        for _ in range(args.epochs):
            for batch in torch.randperm(len(x)).split(args.batch_size):
                optim.zero_grad()
                nn.functional.cross_entropy(head(x[batch]), y[batch]).backward()
                optim.step()
        with torch.no_grad():
            (head(xt).argmax(1) == yt).float().mean().item()
    return time.perf_counter() - start


def measure_sweep(jobs: int, args: argparse.Namespace, data: Path, cache: Path, work: Path) -> dict[str, float]:
    lrs = ",".join(f"{lr:.6g}" for lr in np.geomspace(0.0003, 0.03, jobs)) if jobs > 1 else "0.003"
    sweep_dir = work / f"sweep_{jobs}"
    command = [sys.executable, "-m", "garbage_lit.train", "-m", *overrides(args, data, cache), f"lr={lrs}",
               f"hydra.sweep.dir={sweep_dir}", "+trainer.enable_progress_bar=false",
               "trainer.enable_model_summary=false"]
    print("$", " ".join(command), flush=True)
    seconds, _ = timed(subprocess.run, command, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    finished = len(list(sweep_dir.glob("*/metrics.json")))
    assert finished == jobs, f"{finished} of {jobs} jobs wrote metrics.json"
    return {f"sweep_{jobs}": seconds, f"sweep_{jobs}_plain": plain_head_sweep(jobs, args, cache)}


def save(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, sort_keys=True))


def table(results: dict, sizes: list[int], jobs: list[int]) -> str:
    rows = [(key, name) for key, name in STAGES.items()] + [(f"sweep_{j}", f"cached sweep, J={j}") for j in jobs]
    plain_of = {"scan_cold": "scan_plain", "scan_warm": "scan_plain"}
    head = "| step | " + " | ".join(f"N = {n:,}" for n in sizes) + " |"
    lines = [head, "|" + " --- |" * (len(sizes) + 1)]
    for key, name in rows:
        cells = []
        for n in sizes:
            r = results.get(str(n), {})
            plain = plain_of.get(key, f"{key}_plain")
            if key in r and plain in r:
                cells.append(f"{r[key]:.3g} s / {r[plain]:.3g} s = {r[key] / r[plain]:.3g}x")
            else:
                cells.append("not measured")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, sizes: list[int], jobs: list[int], path: Path, title: str) -> None:
    """Time against N for each step, garbage-lit solid and plain PyTorch dashed (log-log)."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    fig.suptitle(title, fontsize=9)
    axes = fig.subplots(1, 3)
    panels = [("set-up scan", [("scan_cold", "cold"), ("scan_warm", "warm (scan cache)")], "scan_plain"),
              ("feature cache fill", [("fill", "garbage-lit")], "fill_plain"),
              ("cached sweep", [(f"sweep_{j}", f"J={j}") for j in jobs], None)]
    for ax, (title, series, plain_key) in zip(axes, panels):
        for key, label in series:
            ns = [n for n in sizes if key in results.get(str(n), {})]
            line, = ax.plot(ns, [results[str(n)][key] for n in ns], "o-", label=label)
            plain = plain_key or f"{key}_plain"
            ps = [n for n in sizes if plain in results.get(str(n), {})]
            if ps and (plain_key is None or key == series[0][0]):
                colour = "grey" if plain_key else line.get_color()
                ax.plot(ps, [results[str(n)][plain] for n in ps], "s--", color=colour,
                        label=("plain PyTorch (ImageFolder)" if plain_key == "scan_plain" else "plain PyTorch")
                        + ("" if plain_key else f", J={label[2:]}"))
        ax.set(xscale="log", yscale="log", title=title, xlabel="images (N)", ylabel="seconds")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[600, 2500, 15000])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fill-repeats", type=int, default=1,
                        help="fills per side, alternating which goes first; the fastest counts")
    parser.add_argument("--data", type=Path, default=default_data(), help="the photos the images are made from")
    parser.add_argument("--images", type=Path, default=DEFAULT_OUT, help="where the generated images are kept")
    parser.add_argument("--work", type=Path, default=Path("/work/runs/scale"))
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("scale.png"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--build-only", action="store_true", help="only make the images")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results_file = args.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    if not args.report_only:
        print(f"machine: {machine()}", flush=True)
        build(args.data, args.images, max(args.sizes))
        if args.build_only:
            return
        # Step by step across the sizes (scans, fills, then sweeps by J): a run cut short keeps whole rows.
        plan = [(n, step) for step in ["scan", "fill", *args.jobs] for n in args.sizes]
        for n, step in plan:
            data, work = subset_of(args.data, args.images, n), args.work / f"n{n}"
            cache = work / "cache"
            row = results.setdefault(str(n), {"image_size": args.image_size, "epochs": args.epochs})
            if (f"sweep_{step}" if isinstance(step, int) else step if step == "fill" else "scan_cold") in row:
                continue  # measured by an earlier run with these settings
            if step == "scan":
                row.update(measure_scan(data, work))
            elif step == "fill":
                row.update(measure_fill(args, data, cache))
            else:
                row.update(measure_sweep(step, args, data, cache, work))
            row[f"load_after_{step}"] = round(os.getloadavg()[0], 1)
            save(results, results_file)
            print(n, step, {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    print(table(results, args.sizes, args.jobs))
    plot(results, args.sizes, args.jobs, args.plot,
         f"{args.model} at {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}; "
         f"missing points: not measured")
    print(f"plot: {args.plot}; results: {results_file}")


if __name__ == "__main__":
    main()
