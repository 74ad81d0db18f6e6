"""Find the labelled images of a dataset in one of the supported layouts and check each one.

Two layouts are supported:

* ``folder``: one sub-folder per class, as torchvision's ``ImageFolder`` expects.
* ``garbage_classify``: the Huawei Cloud layout, a flat folder of ``img_N.jpg`` files, each with an
  ``img_N.txt`` holding ``img_N.jpg, LABEL``; class names come from ``garbage_classify_rule.json``.

Problems with single files (no label, malformed label, unreadable image, tiny image, ...) are collected
as :class:`DataProblem` rows rather than raised, so the caller can list them and leave the files out;
problems with the dataset as a whole (missing root, malformed rule file) raise :class:`DataError`. Files
that are not images where the layout looks for images (``.DS_Store``, ``notes.md``) are listed too, as
``ignored``: worth a line in the listing, not a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from garbage_lit.data.images import load_rgb
from garbage_lit.data.progress import progress
from garbage_lit.data.samples import IGNORED, KEPT, DataError, DataProblem, Sample, ScanResult
from garbage_lit.data.scan_cache import ImageCheck, cached_checks

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
RULE_FILE = "garbage_classify_rule.json"
LAYOUTS = ("folder", "garbage_classify")
SCAN_PROGRESS_MIN = 500  # images: smaller scans take seconds and show no progress bar
MIN_IMAGE_SIDE = 32  # px: a photo whose shorter side is smaller is kept but warned about (upscaled 8x to 256)


def scan_dataset(root: str | Path, layout: str, check_workers: int = 4,
                 cache_dir: str | Path | None = None) -> ScanResult:
    """Scan ``root`` in ``layout`` and check every image can be decoded (reusing ``cache_dir``'s scan records)."""
    root = Path(root).expanduser()
    if layout not in LAYOUTS:
        raise DataError(f"data.layout={layout!r} is not supported; choose one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise DataError(
            f"dataset root {root} does not exist or is not a folder: set data.root to the folder holding "
            f"the {layout!r} layout"
        )
    if layout == "folder":
        result = _scan_folder(root)
    else:
        result = _scan_garbage_classify(root)
    others = (f" ({len(result.ignored)} other files were not read as images, e.g. {result.ignored[0].file}: "
              f"{result.ignored[0].problem})" if result.ignored else "")
    if not result.samples and not result.problems:
        raise DataError(f"dataset root {root} holds no images in the {layout!r} layout (data.layout){others}; "
                        f"check data.root and data.layout")
    checked, problems = check_images(result.samples, root, workers=check_workers, cache_dir=cache_dir)
    result.samples = checked
    result.problems.extend(problems)
    if not result.samples:
        raise DataError(f"no usable images under {root}: {len(result.problems)} problem(s), e.g. "
                        f"{result.problems[0].file}: {result.problems[0].problem}{others}")
    return result


def is_image_file(path: Path) -> bool:
    """A visible file with an image extension (see IMAGE_EXTENSIONS)."""
    return path.is_file() and _has_image_name(path)


def _has_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _not_an_image(path: Path, root: Path, reason: str | None = None) -> DataProblem:
    """The ``ignored`` row of a file the layout does not read as an image, with why."""
    if reason is None:
        suffix = path.suffix.lower()
        reason = ("hidden file" if path.name.startswith(".")
                  else f"not an image file ({f'extension {suffix}' if suffix else 'no extension'}; "
                       f"images are {' '.join(IMAGE_EXTENSIONS)})")
    return DataProblem(_rel(path, root), reason, IGNORED)


def _scan_folder(root: Path) -> ScanResult:
    entries = sorted(root.iterdir())
    class_dirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if not class_dirs:
        raise DataError(f"{root} has no class sub-folders; the 'folder' layout needs one folder per class "
                        f"(or set data.layout=garbage_classify)")
    samples: list[Sample] = []
    problems: list[DataProblem] = []
    # Other files beside the class folders (README, LICENSE) are not the dataset's; a photo there is.
    ignored = [_not_an_image(p, root, "image outside any class folder") for p in entries if is_image_file(p)]
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.is_file())
        images = [p for p in files if _has_image_name(p)]
        ignored += [_not_an_image(p, root) for p in files if not _has_image_name(p)]
        if not images:
            problems.append(DataProblem(_rel(class_dir, root) + "/", "class folder holds no images",
                                        "class kept with no samples"))
        samples.extend(Sample(path, label) for path in images)
    return ScanResult(root, "folder", [p.name for p in class_dirs], samples, problems, ignored)


def read_rule_file(path: Path) -> list[str]:
    """Class names from a ``garbage_classify_rule.json`` mapping ``"0".."N-1"`` to names."""
    try:
        rule = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); it must map class ids to names, "
                        f'e.g. {{"0": "其他垃圾/一次性快餐盒", ...}}') from exc
    if not isinstance(rule, dict) or not rule:
        raise DataError(f"{path} must be a JSON object mapping class ids to names")
    try:
        ids = sorted(int(k) for k in rule)
    except ValueError as exc:
        raise DataError(f"{path}: class ids must be integers, found {sorted(rule)[:5]}") from exc
    if ids != list(range(len(ids))):
        raise DataError(f"{path}: class ids must run from 0 to {len(ids) - 1} without gaps, found {ids[:10]}...")
    return [str(rule[str(i)]) for i in ids]


def parse_label_file(txt: Path) -> tuple[str, int]:
    """Parse ``img_N.jpg, LABEL`` from a label file; raises ValueError with a readable reason.

    Tolerates a UTF-8 BOM, GBK encoding, CRLF line ends, blank lines, spaces and a full-width comma.
    """
    raw = txt.read_bytes()
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError("label file is neither UTF-8 nor GBK text")
    text = text.replace("\uff0c", ",")  # a full-width comma, as Chinese keyboards type it
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"expected one line 'img_N.jpg, LABEL', found {len(lines)} non-blank lines")
    parts = [part.strip() for part in lines[0].split(",")]
    if len(parts) != 2 or not parts[0]:
        raise ValueError(f"expected 'img_N.jpg, LABEL', found {lines[0]!r}")
    try:
        label = int(parts[1])
    except ValueError:
        raise ValueError(f"label {parts[1]!r} is not an integer") from None
    return parts[0], label


def _scan_garbage_classify(root: Path) -> ScanResult:
    rule_path = root / RULE_FILE
    class_names = read_rule_file(rule_path) if rule_path.is_file() else None
    files = sorted(p for p in root.iterdir() if p.is_file())
    images = {p.stem: p for p in files if _has_image_name(p)}
    texts = {p.stem: p for p in files if p.suffix.lower() == ".txt"}
    ignored = [_not_an_image(p, root) for p in files
               if not _has_image_name(p) and p.suffix.lower() != ".txt" and p.name != RULE_FILE]
    if not images and not texts:
        raise DataError(f"{root} holds no img_N.jpg / img_N.txt pairs; is data.layout=garbage_classify right?")
    problems: list[DataProblem] = []
    labelled: list[tuple[Path, int]] = []
    for stem in sorted(texts.keys() - images.keys()):
        problems.append(DataProblem(texts[stem].name, "label file without an image"))
    for stem in sorted(images, key=_natural_key):
        image = images[stem]
        if stem not in texts:
            problems.append(DataProblem(image.name, f"image without a label file (expected {stem}.txt)"))
            continue
        try:
            name, label = parse_label_file(texts[stem])
        except (ValueError, OSError) as exc:
            problems.append(DataProblem(texts[stem].name, f"malformed label file: {exc}"))
            continue
        if name != image.name:
            problems.append(DataProblem(texts[stem].name, f"names {name!r}, not {image.name!r}"))
            continue
        if class_names is not None and not 0 <= label < len(class_names):
            problems.append(DataProblem(texts[stem].name,
                                        f"label {label} is outside {RULE_FILE} (0..{len(class_names) - 1})"))
            continue
        if label < 0:
            problems.append(DataProblem(texts[stem].name, f"label {label} is negative"))
            continue
        labelled.append((image, label))
    if class_names is None:
        # Without the rule file the classes are the label ids seen, named by their number.
        problems.append(DataProblem(RULE_FILE, "missing: class names unknown", "classes named by their label id"))
        ids = sorted({label for _, label in labelled})
        index = {label: i for i, label in enumerate(ids)}
        class_names = [str(label) for label in ids]
        labelled = [(path, index[label]) for path, label in labelled]
    samples = [Sample(path, label) for path, label in labelled]
    return ScanResult(root, "garbage_classify", class_names, samples, problems, ignored)


def _natural_key(stem: str) -> tuple:
    digits = "".join(ch for ch in stem if ch.isdigit())
    return (int(digits) if digits else -1, stem)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def check_image(path: Path) -> ImageCheck:
    """Decode ``path`` once; return the sha256 of its bytes, the problem (or None) and its size in pixels."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageCheck("", f"unreadable file: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ImageCheck(digest, "empty file (0 bytes)")
    try:
        load_rgb(path, draft_size=64)
        with Image.open(io.BytesIO(data)) as header:  # the stored size: the draft above decodes a smaller one
            width, height = header.size
    except UnidentifiedImageError:
        return ImageCheck(digest, "not an image Pillow can read (wrong extension or corrupt header)")
    except Image.DecompressionBombError as exc:
        return ImageCheck(digest, f"image over Pillow's decompression-bomb limit: {exc}")
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageCheck(digest, f"truncated or corrupt image: {exc}")
    return ImageCheck(digest, None, width, height)


def check_images(samples: Iterable[Sample], root: Path, workers: int = 4,
                 cache_dir: str | Path | None = None) -> tuple[list[Sample], list[DataProblem]]:
    """Decode every image (in threads: Pillow releases the GIL); keep the good ones, list the rest.

    Images whose shorter side is under ``MIN_IMAGE_SIDE`` are kept and listed. With ``cache_dir``, files
    whose path, size and mtime are unchanged since an earlier scan are not read again (see
    :mod:`garbage_lit.data.scan_cache`).
    """
    samples = list(samples)

    def check_all(paths: list[Path]) -> list[ImageCheck]:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
            return list(progress(pool.map(check_image, paths), len(paths), "scanning images", SCAN_PROGRESS_MIN))

    paths = [s.path for s in samples]
    results = check_all(paths) if cache_dir is None else cached_checks(paths, root, cache_dir, check_all)
    good: list[Sample] = []
    problems: list[DataProblem] = []
    for sample, check in zip(samples, results):
        if check.problem is not None:
            problems.append(DataProblem(_rel(sample.path, root), check.problem))
            continue
        good.append(Sample(sample.path, sample.label, check.sha256))
        if min(check.width, check.height) < MIN_IMAGE_SIDE:
            problems.append(DataProblem(_rel(sample.path, root),
                                        f"tiny image ({check.width}x{check.height} px, shorter side under "
                                        f"{MIN_IMAGE_SIDE} px): upscaled to the input size it shows little", KEPT))
    return good, problems
