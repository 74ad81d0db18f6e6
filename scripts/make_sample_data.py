"""Build the bundled TrashNet sample that the default `data=sample` config trains on.

TrashNet (garythung/trashnet, MIT licence) has 2,527 photos of 512x384 in six class folders.
This script picks a seeded, fixed number of photos per class, skips byte-identical photos
(TrashNet files some identical photos under two classes), downscales them and writes them to
`garbage_lit/sample_data/trashnet_mini/<class>/` with the licence notice and a provenance file.

    python scripts/make_sample_data.py /path/to/trashnet
"""

from __future__ import annotations

import argparse
import hashlib
import random
from pathlib import Path

from PIL import Image

TRASHNET_LICENSE = """\
The images in this folder are a downscaled subset of TrashNet (https://github.com/garythung/trashnet),
distributed under the MIT License:

MIT License

Copyright (c) 2017 Gary Thung

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "garbage_lit" / "sample_data" / "trashnet_mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trashnet_root", type=Path, help="folder with TrashNet's six class folders")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--width", type=int, default=256, help="output width; height keeps the 4:3 aspect")
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    files = sorted(args.trashnet_root.glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"no */*.jpg under {args.trashnet_root}: point at TrashNet's dataset-resized folder")
    digests: dict[str, list[Path]] = {}
    for path in files:
        digests.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), []).append(path)
    duplicated = {p for paths in digests.values() if len(paths) > 1 for p in paths}

    rng = random.Random(args.seed)
    provenance = ["file\tsource\tsha256_of_source"]
    for class_dir in sorted(p for p in args.trashnet_root.iterdir() if p.is_dir()):
        candidates = sorted(p for p in class_dir.glob("*.jpg") if p not in duplicated)
        chosen = sorted(rng.sample(candidates, min(args.per_class, len(candidates))))
        (args.out / class_dir.name).mkdir(parents=True, exist_ok=True)
        for src in chosen:
            with Image.open(src) as image:
                image = image.convert("RGB")
                height = round(args.width * image.height / image.width)
                image.resize((args.width, height), Image.Resampling.LANCZOS).save(
                    args.out / class_dir.name / src.name, quality=args.quality, optimize=True
                )
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
            provenance.append(f"{class_dir.name}/{src.name}\ttrashnet:{class_dir.name}/{src.name}\t{digest}")
    (args.out / "LICENSE-TRASHNET.txt").write_text(TRASHNET_LICENSE)
    (args.out / "PROVENANCE.tsv").write_text("\n".join(provenance) + "\n")
    print(f"wrote {len(provenance) - 1} images to {args.out}")


if __name__ == "__main__":
    main()
