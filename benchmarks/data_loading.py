"""Benchmark 2: data loading images/s, decoded-image cache vs torchvision ImageFolder + PIL.

    python benchmarks/data_loading.py                  # 50 images per class, 224 px, 2 epochs
    python benchmarks/data_loading.py --per-class 5 --epochs 1   # a quick smoke run

Both sides use the training transforms of a run (resize, center crop, random rotation, to float,
normalize) and one DataLoader (batch 32, --workers). The ImageFolder side decodes every JPEG every
epoch; the cached side reads the uint8 memmap and applies only the per-epoch part. The one-time
fill of the cache is timed and printed separately.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from torch.utils.data import DataLoader

from garbage_lit.data.image_cache import DecodedImageDataset, decoded_images
from garbage_lit.data.scan import scan_dataset
from garbage_lit.data.transforms import build_transforms, epoch_transforms

from common import parser as common_parser
from common import report, subset, workdir


def images_per_second(dataset, args: argparse.Namespace) -> float:
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    start = time.perf_counter()
    count = sum(len(labels) for _ in range(args.epochs) for _, labels in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = common_parser(__doc__, per_class=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the loading process (DataLoader workers use 1)")
    parser.add_argument("--rotation", type=float, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = workdir("loading")
    data = subset(args.data, args.per_class, work)
    mean = std = (0.5, 0.5, 0.5)
    folder = torchvision.datasets.ImageFolder(
        str(data), transform=build_transforms(True, args.image_size, args.resize_size, args.rotation, mean, std))
    samples = scan_dataset(data, "folder").samples
    start = time.perf_counter()
    path = decoded_images(samples, args.image_size, args.resize_size, work / "cache")
    fill = time.perf_counter() - start
    cached = DecodedImageDataset(path, [s.label for s in samples],
                                 epoch_transforms(True, args.rotation, mean, std))

    plain_rate = images_per_second(folder, args)
    cached_rate = images_per_second(cached, args)
    jpeg_mb = sum(s.path.stat().st_size for s in samples) / 2**20
    rows = [("ImageFolder + PIL", f"{plain_rate:8.1f} images/s"),
            ("decoded-image cache", f"{cached_rate:8.1f} images/s"),
            ("one-time cache fill", f"{fill:8.1f} s for {len(samples)} images ({path.stat().st_size / 2**20:.1f} MB "
                                    f"uint8 vs {jpeg_mb:.1f} MB of JPEG)")]
    ratio = cached_rate / plain_rate
    report(f"data loading: {len(samples)} images from {args.data}, {args.image_size}px, rotation {args.rotation}, "
           f"batch {args.batch_size}, {args.workers} workers, {args.threads} torch threads, {args.epochs} epochs",
           rows, "speed-up (cached / ImageFolder images/s)", ratio, ">= 3x", ratio >= 3)


if __name__ == "__main__":
    main()
