"""Benchmark 11: one fine-tuning training step, every CPU cycle accounted for, by layer kind and by stage of the step.

    python benchmarks/step_profile.py                                  # lite0 and lite2, 224 px, batch 32, 4 formats
    python benchmarks/step_profile.py --models efficientnet_lite0 --formats fp32-cl --steps 2 --batch-size 8  # smoke

For each backbone and each format (precision x memory format: ``fp32`` / ``bf16`` autocast, contiguous / channels-last
``-cl``), a whole network in train mode (every parameter trainable, as after ``experiment=finetune``'s unfreeze) runs
``--steps`` timed training steps on random images after two warm-up steps, under ``torch.profiler``. Each profiled
operator's self CPU time is put into a kind by what it is and the shapes it ran on: the stem convolution (3 input
channels), depthwise convolutions (a weight of one input channel per group), pointwise (1x1) convolutions, the final
1x1 convolution, padding copies, BatchNorm, activations (ReLU6 = hardtanh), the linear head and loss, format and
precision conversions (``copy_``, ``to``, ``contiguous``), the optimizer step (AdamW, foreach) and the rest. Forward and
backward are told apart by the operator (``*_backward``) or, for autograd's own accumulations, the backward pass.

Then the parts of a step beyond the network, each timed alone on the same machine: the EMA update of the weights,
the MixUp/CutMix of a batch, and decoding + strong augmentation of ``--batch-size`` TrashNet photos (``--data``, else
the bundled sample). What Lightning adds around a step is benchmark 9's (``finetune_speed.py``: the framework's epoch
beside a plain loop's). ``--onednn`` runs one more step with ``ONEDNN_VERBOSE=1``: the oneDNN kernels that ran (e.g.
``jit_dw`` vs ``jit_bf16`` for depthwise weight gradients).
Prints one Markdown table per backbone (milliseconds per step) and the machine and load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from garbage_lit.models.backbones import create_backbone

from common import default_data, machine

FORMATS = ("fp32", "fp32-cl", "bf16", "bf16-cl")
KINDS = ("stem conv", "depthwise conv", "pointwise conv", "final 1x1 conv", "padding", "BatchNorm", "activation",
         "head + loss", "conversions", "optimizer", "other")


def kind_of(name: str, shapes: list) -> str:
    """The layer kind of one profiled operator, from its name and input shapes."""
    if "convolution" in name:
        at = 2 if "backward" in name else 1  # convolution_backward(grad_output, input, weight, ...)
        weight = shapes[at] if len(shapes) > at and shapes[at] else []
        if len(weight) == 4:
            out_channels, in_per_group, kh, _ = weight
            if in_per_group == 3 and kh == 3:
                return "stem conv"
            if in_per_group == 1 and kh > 1:
                return "depthwise conv"
            if kh == 1:
                return "final 1x1 conv" if out_channels == 1280 else "pointwise conv"
        return "pointwise conv"
    if "pad" in name:
        return "padding"
    if "batch_norm" in name:
        return "BatchNorm"
    if "hardtanh" in name or "relu" in name or "threshold" in name:
        return "activation"
    if any(key in name for key in ("addmm", "linear", "cross_entropy", "log_softmax", "nll_loss", "mm")):
        return "head + loss"
    if any(key in name for key in ("copy_", "::to", "_to_copy", "contiguous", "clone")):
        return "conversions"
    if any(key in name for key in ("_foreach", "adam", "Optimizer")):
        return "optimizer"
    return "other"


def network(arch: str, fmt: str) -> tuple[nn.Module, nn.Module]:
    backbone = create_backbone(arch, "imagenet").module
    head = nn.Linear(1280, 6)
    model = nn.Sequential(backbone, head).train()
    if fmt.endswith("-cl"):
        model = model.to(memory_format=torch.channels_last)
    return model, head


def profile_steps(arch: str, fmt: str, batch_size: int, size: int, steps: int) -> dict[str, dict[str, float]]:
    """Milliseconds per step of each kind, forward and backward apart, and the step's wall time."""
    model, _ = network(arch, fmt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    images = torch.randn(batch_size, 3, size, size)
    labels = torch.arange(batch_size) % 6
    if fmt.endswith("-cl"):
        images = images.contiguous(memory_format=torch.channels_last)
    bf16 = fmt.startswith("bf16")

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    walls = []
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            walls.append(time.perf_counter() - start)
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"forward": 0.0, "backward": 0.0})
    others: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.self_cpu_time_total <= 0 or event.key.startswith("ProfilerStep"):
            continue
        kind = kind_of(event.key, event.input_shapes)
        if kind == "other":
            others[event.key] += event.self_cpu_time_total / 1000 / steps
        phase = "backward" if ("backward" in event.key or "Backward" in event.key) else "forward"
        if kind == "optimizer":
            phase = "forward"  # the optimizer's step: one column is enough
        table[kind][phase] += event.self_cpu_time_total / 1000 / steps
    table["(wall time of the step)"] = {"forward": statistics.median(walls) * 1000, "backward": 0.0}
    print(f"{arch} {fmt}: most of 'other': " + ", ".join(
        f"{name} {ms:.0f}" for name, ms in sorted(others.items(), key=lambda item: -item[1])[:8]))
    return table


def beyond_the_network(arch: str, batch_size: int, size: int, data: Path) -> dict[str, float]:
    """Milliseconds for each part of a step that is not the network: EMA, MixUp/CutMix, decoding + augmentation."""
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

    from garbage_lit.data.datasets import ImageDataset
    from garbage_lit.data.scan import scan_dataset
    from garbage_lit.data.transforms import build_transforms
    from garbage_lit.training.batch_transforms import mixup_or_cutmix

    model, _ = network(arch, "fp32-cl")
    average = AveragedModel(model, multi_avg_fn=None, avg_fn=get_ema_avg_fn(0.99), use_buffers=True)
    results = {}
    start = time.perf_counter()
    for _ in range(5):
        average.update_parameters(model)
    results["EMA update of the weights"] = (time.perf_counter() - start) / 5 * 1000
    mix = mixup_or_cutmix(6)
    images, labels = torch.randn(batch_size, 3, size, size), torch.arange(batch_size) % 6
    start = time.perf_counter()
    for _ in range(10):
        mix(images, labels)
    results["MixUp/CutMix of a batch"] = (time.perf_counter() - start) / 10 * 1000
    samples = scan_dataset(data, "folder").samples[:batch_size]
    dataset = ImageDataset(samples, build_transforms(True, size, round(size * 256 / 224), augment="strong"))
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    results[f"JPEG decoding + strong augmentation of {len(dataset)} photos"] = (time.perf_counter() - start) * 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--onednn", action="store_true", help="ONEDNN_VERBOSE=1 for one step: the kernels that ran")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}\nbatch {args.batch_size}, {args.size} px, {args.steps} profiled steps after 2 "
          f"warm-up steps, every parameter trainable, AdamW (foreach)\n")
    for arch in args.models:
        tables = {fmt: profile_steps(arch, fmt, args.batch_size, args.size, args.steps) for fmt in args.formats}
        print(f"### {arch}, {args.size} px, batch {args.batch_size}: CPU milliseconds per step (self time, all "
              f"threads), forward / backward\n")
        print("| kind | " + " | ".join(args.formats) + " |")
        print("| --- | " + " | ".join("---" for _ in args.formats) + " |")
        for kind in [*KINDS, "(wall time of the step)"]:
            cells = []
            for fmt in args.formats:
                entry = tables[fmt].get(kind, {"forward": 0.0, "backward": 0.0})
                cells.append(f"{entry['forward']:.0f}" if kind in ("optimizer", "(wall time of the step)")
                             else f"{entry['forward']:.0f} / {entry['backward']:.0f}")
            print(f"| {kind} | " + " | ".join(cells) + " |")
        totals = [sum(e["forward"] + e["backward"] for k, e in tables[f].items() if not k.startswith("("))
                  for f in args.formats]
        print("| (all operators) | " + " | ".join(f"{t:.0f}" for t in totals) + " |\n")
        for name, ms in beyond_the_network(arch, args.batch_size, args.size, args.data).items():
            print(f"- {name}: {ms:.0f} ms")
        print()
    if args.onednn:
        os.environ["ONEDNN_VERBOSE"] = "1"
        profile_steps(args.models[0], args.formats[-1], args.batch_size, args.size, 1)
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
