"""Image files: which files are images, decoding them into the RGB picture a person would see, and the
datasets over them (labelled samples for training and evaluation, unlabelled inputs for predict)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from garbage_lit.data.samples import Sample

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def has_image_name(path: Path) -> bool:
    """A visible name with an image extension (see IMAGE_EXTENSIONS); the file itself is not looked at."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def is_image_file(path: Path) -> bool:
    """A visible file with an image extension (see IMAGE_EXTENSIONS)."""
    return path.is_file() and has_image_name(path)


def load_rgb(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """Open ``path``, apply its EXIF orientation and convert it to 8-bit RGB.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are converted rather
    than rejected. ``draft_size`` lets JPEG decode at a reduced scale, which still reads the whole
    file (so truncation is detected) at a fraction of the cost. An image over Pillow's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is refused with
    ``Image.DecompressionBombError`` (Pillow itself only warns up to twice that limit).
    """
    with Image.open(path) as image:
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > limit:
            raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels is over Pillow's "
                                               f"decompression-bomb limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS)")
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Scale 16-bit grey (and 32-bit grey by its peak) to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if image.mode.startswith("I;16") else max(array.max(), 255.0)
        image = Image.fromarray(np.clip(array * (255.0 / full_scale), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


class ImageDataset(Dataset):
    """Yields ``(transform(image), label)`` for each checked, labelled sample."""

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image = load_rgb(sample.path)
        return (self.transform(image) if self.transform else image), sample.label


# -- predict's inputs: files and folders in, one row per image out, failures kept as rows -------
@dataclass(frozen=True)
class Input:
    """One image to predict, or an input that yields none (``error`` says why)."""

    path: Path
    error: str = ""


def collect_inputs(inputs: Sequence[str | Path]) -> list[Input]:
    """Files as given (whatever their extension) and the images under folders (recursively, sorted)."""
    found: list[Input] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if is_image_file(p))
            found += [Input(p) for p in images] or [Input(path, "folder holds no images")]
        elif path.is_file():
            found.append(Input(path))
        else:
            found.append(Input(path, "no such file or folder"))
    return found


class UnlabelledImages(Dataset):
    """Yields ``(tensor, index, error)``; an image that cannot be read gives zeros and its error text."""

    def __init__(self, inputs: Sequence[Input], transform: Callable[[Image.Image], torch.Tensor],
                 image_size: int) -> None:
        self.inputs = list(inputs)
        self.transform = transform
        self.blank = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        item = self.inputs[index]
        if item.error:
            return self.blank, index, item.error
        try:
            return self.transform(load_rgb(item.path)), index, ""
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            return self.blank, index, f"unreadable image: {type(exc).__name__}: {exc}"
