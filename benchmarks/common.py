"""Helpers shared by the benchmark scripts: which data, a per-class subset, the machine, the report."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from garbage_lit.config import SAMPLE_DATA
from garbage_lit.data.images import IMAGE_EXTENSIONS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GARBAGE_LIT_SHARED_DATA", REPO.parent / "shared" / "data"))
TRASHNET = SHARED_DATA / "trashnet"


def default_data() -> Path:
    """TrashNet in ../shared/data (or $GARBAGE_LIT_SHARED_DATA) when present, else the bundled sample (said aloud)."""
    if TRASHNET.is_dir():
        return TRASHNET
    print(f"benchmarks: {TRASHNET} not found; measuring the bundled 180-image sample instead "
          f"(pass --data or set GARBAGE_LIT_SHARED_DATA for TrashNet)", file=sys.stderr)
    return SAMPLE_DATA


def subset(root: Path, per_class: int | None, workdir: Path) -> Path:
    """A folder-layout copy of ``root`` (symlinks) with the first ``per_class`` images of each class."""
    if not per_class:
        return root
    target = workdir / f"{root.name}_{per_class}_per_class"
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:per_class]
        (target / class_dir.name).mkdir(parents=True, exist_ok=True)
        for image in images:
            link = target / class_dir.name / image.name
            if not link.exists():
                link.symlink_to(image.resolve())
    return target


def parser(doc: str, per_class: int, model: str | None = None) -> argparse.ArgumentParser:
    """The options every benchmark shares: which data, how much of it, which model, batch and image size."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--per-class", type=int, default=per_class, help="images per class (0: all)")
    if model:
        parser.add_argument("--model", default=model)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--resize-size", type=int, default=256)
    return parser


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"garbage_lit_bench_{prefix}_"))


def machine() -> str:
    """One line describing where the numbers came from (load average included: the machine may be shared)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), python {sys.version.split()[0]}, load average {load}")


def report(title: str, rows: list[tuple[str, str]], ratio_name: str, ratio: float, target: str | None = None,
           met: bool = True) -> None:
    """Print both sides of a comparison and their ratio (against the target, when there is one)."""
    width = max(len(name) for name, _ in rows)
    print(f"\n== {title}")
    print(f"machine: {machine()}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    verdict = f" (target {target}: {'met' if met else 'NOT met'})" if target else ""
    print(f"  {ratio_name}: {ratio:.2f}x{verdict}")
