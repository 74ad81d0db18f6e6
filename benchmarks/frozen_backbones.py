"""Benchmark 5: frozen backbones side by side: test accuracy on TrashNet, features/s and parameters.

    python benchmarks/frozen_backbones.py --data ../shared/data/trashnet    # lite0/1/2 trained, 3 zoo archs timed
    python benchmarks/frozen_backbones.py --trained efficientnet_lite0 --timed timm:resnet18 --per-class 20

Each ``--trained`` model config is one real ``python -m garbage_lit.train`` run of the paper recipe with
Adam, as in the README's reference check: ImageNet weights, frozen backbone, linear head, Adam lr 0.003,
batch 32, 10 epochs, no rotation, feature cache on, stratified 80/20 split with ``data.split_seed=0``, at
the backbone's own input size (its weights' preprocessing). Test accuracy and macro recall come from its
``metrics.json``. Every backbone, trained or ``--timed`` (``zoo:arch``, random weights: speed only), is
timed on the frozen forward pass: the best of ``--repeats`` batches of random images at its own input
size, eval mode, no autograd, after one warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from garbage_lit.models.backbones import create_backbone
from garbage_lit.records.folder import TEST_ACC, TEST_RECALL

from common import default_data, machine, subset, workdir

REPO = Path(__file__).resolve().parents[1]
LITE_ZOO = "efficientnet_lite"


def train_command(model: str, data: Path, run_dir: Path, epochs: int) -> list[str]:
    """The paper recipe with Adam on cached frozen features (README: "Checked against an independent reference")."""
    return [sys.executable, "-m", "garbage_lit.train", f"model={model}", "model.weights=imagenet", "data=folder",
            f"data.root={data}", "data.split_seed=0", "data.rotation_degrees=0", "cache.features=true",
            "optim=adam", "lr=0.003", "batch_size=32", f"epochs={epochs}", "+trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", f"hydra.run.dir={run_dir}"]


def features_per_second(zoo: str, arch: str, weights: str, batch_size: int, repeats: int) -> dict:
    """Frozen forward throughput of ``arch`` at its own input size, and its size."""
    backbone = create_backbone(arch, weights, zoo)
    module = backbone.module.eval()
    size = backbone.preprocessing.image_size
    images = torch.randn(batch_size, 3, size, size)
    times = []
    with torch.inference_mode():
        module(images)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            module(images)
            times.append(time.perf_counter() - start)
    return {"zoo": zoo, "arch": arch, "input_size": size, "features/s": batch_size / min(times),
            "parameters": sum(p.numel() for p in module.parameters()), "feature_dim": backbone.feature_dim,
            "weights_source": backbone.weights_source}


def main() -> None:
    """Train the ``--trained`` configs, time every backbone, print the rows as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--per-class", type=int, default=0, help="images per class (0: all)")
    parser.add_argument("--trained", nargs="*", default=["efficientnet_lite0", "efficientnet_lite1",
                                                         "efficientnet_lite2"],
                        help="efficientnet-lite model configs to train (their weights are offline)")
    parser.add_argument("--timed", nargs="*", default=["torchvision:mobilenet_v3_small", "timm:resnet18",
                                                       "timm:efficientnet_b0"],
                        help="zoo:arch backbones to time with random weights (speed only)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16, help="images per timed forward batch")
    parser.add_argument("--repeats", type=int, default=2, help="timed batches per backbone (the fastest counts)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    work = args.out or workdir("frozen")
    data = subset(args.data, args.per_class, work)
    print(f"machine: {machine()}\ndata: {data}\nruns: {work}", flush=True)

    rows = []
    for model in args.trained:
        run_dir = work / model
        command = train_command(model, data, run_dir, args.epochs)
        print("$", " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append({**features_per_second(LITE_ZOO, model, "imagenet", args.batch_size, args.repeats),
                     "test acc": metrics["final"][TEST_ACC], "macro recall": metrics["final"][TEST_RECALL],
                     "run wall time (s)": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    for spec in args.timed:
        zoo, _, arch = spec.partition(":")
        rows.append(features_per_second(zoo, arch, "none", args.batch_size, args.repeats))
        print(json.dumps(rows[-1]), flush=True)

    print("\n| backbone | weights | input | test acc | macro recall | features/s | parameters |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        accuracy = f"{row['test acc']:.3f}" if "test acc" in row else "(speed only)"
        recall = f"{row['macro recall']:.3f}" if "macro recall" in row else ""
        print(f"| {row['zoo']} {row['arch']} | {row['weights_source']} | {row['input_size']} px | {accuracy} | "
              f"{recall} | {row['features/s']:.1f} | {row['parameters'] / 1e6:.2f} M |")


if __name__ == "__main__":
    main()
