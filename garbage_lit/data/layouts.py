"""Dataset layouts: a table of readers, each finding the labelled images under a root its own way.

* ``folder``: one sub-folder per class, as torchvision's ``ImageFolder`` expects.
* ``garbage_classify``: the Huawei Cloud layout, a flat folder of ``img_N.jpg`` files, each with an
  ``img_N.txt`` holding ``img_N.jpg, LABEL``; class names come from ``garbage_classify_rule.json``.

A reader maps the root to a :class:`ScanResult` of samples not yet checked (:mod:`garbage_lit.data.scan`
decodes and hashes them). Problems with single files (no label, malformed label, ...) are collected as
:class:`DataProblem` rows rather than raised, so the caller can list them and leave the files out; problems
with the dataset as a whole (no class folders, malformed rule file) raise :class:`DataError`. Files that are
not images where the layout looks for images (``.DS_Store``, ``notes.md``) are listed too, as ``ignored``:
worth a line in the listing, not a warning.

A new layout is one reader function here and its entry in :data:`LAYOUTS`, plus ``conf/data/<name>.yaml``
(``layout: <name>``); ``data.layout`` accepts exactly the names of this table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from garbage_lit.data.images import has_image_name, is_image_file, not_an_image
from garbage_lit.data.samples import IGNORED, DataProblem, Sample, ScanResult, relative_file
from garbage_lit.errors import DataError

RULE_FILE = "garbage_classify_rule.json"


def _not_an_image(path: Path, root: Path, reason: str | None = None) -> DataProblem:
    """The ``ignored`` row of a file the layout does not read as an image, with why."""
    return DataProblem(relative_file(path, root), reason or not_an_image(path) or "not read", IGNORED)


def read_folder(root: Path) -> ScanResult:
    """One sub-folder per class (its name is the class), images anywhere under it, as ``ImageFolder`` reads."""
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
        images = [p for p in files if has_image_name(p)]
        ignored += [_not_an_image(p, root) for p in files if not has_image_name(p)]
        if not images:
            problems.append(DataProblem(relative_file(class_dir, root) + "/", "class folder holds no images",
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


def read_garbage_classify(root: Path) -> ScanResult:
    """``img_N.jpg`` + ``img_N.txt`` pairs in one folder; class names from the rule file, else the label ids."""
    rule_path = root / RULE_FILE
    class_names = read_rule_file(rule_path) if rule_path.is_file() else None
    files = sorted(p for p in root.iterdir() if p.is_file())
    images = {p.stem: p for p in files if has_image_name(p)}
    texts = {p.stem: p for p in files if p.suffix.lower() == ".txt"}
    ignored = [_not_an_image(p, root) for p in files
               if not has_image_name(p) and p.suffix.lower() != ".txt" and p.name != RULE_FILE]
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


LAYOUTS: dict[str, Callable[[Path], ScanResult]] = {"folder": read_folder, "garbage_classify": read_garbage_classify}
