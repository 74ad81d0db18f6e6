"""Image files: which files are images, and decoding them into the RGB picture a person would see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def has_image_name(path: Path) -> bool:
    """A visible name with an image extension (see IMAGE_EXTENSIONS); the file itself is not looked at."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def not_an_image(path: Path) -> str | None:
    """Why training's scan and predict do not read ``path`` as an image (None: they do, by its name); when its content
    is an image all the same (a JPEG named ``.avif``), the reason says so and how to use it."""
    if path.name.startswith("."):
        return "hidden file"
    if has_image_name(path):
        return None
    suffix = path.suffix.lower()
    reason = (f"not an image file ({f'extension {suffix}' if suffix else 'no extension'}; images are "
              f"{' '.join(IMAGE_EXTENSIONS)})")
    try:
        with Image.open(path) as image:
            kind = image.format
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return reason
    extension = next((ext for ext in IMAGE_EXTENSIONS if Image.registered_extensions().get(ext) == kind), None)
    return reason + (f"; its content is a {kind} image: rename it to {path.stem}{extension} to use it" if extension
                     else f"; its content is a {kind} image, a format not read here")


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
