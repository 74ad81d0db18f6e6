"""Decoded-image cache: every image decoded, resized and center-cropped once, kept as a uint8 memmap.

The deterministic part of the preprocessing (see :mod:`garbage_lit.data.transforms`) is the same
every epoch and in every job, so it is done once per (image contents, sizes, library versions) and
stored as one ``(N, image_size, image_size, 3)`` uint8 ``.npy`` file under
``<cache_dir>/images/<key>/``. Later epochs and jobs read pixels from it instead of decoding JPEGs;
the random rotation and normalisation still run per epoch. Filling is crash-safe and shared
between processes (:mod:`garbage_lit.data.cache_store`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset

from garbage_lit.data.cache_store import cached_entry, progress
from garbage_lit.data.images import load_rgb
from garbage_lit.data.samples import Sample, content_ids
from garbage_lit.data.transforms import geometry_transforms

IMAGES_FILE = "images.npy"


def decoded_images(samples: Sequence[Sample], image_size: int, resize_size: int, cache_dir: str | Path,
                   workers: int | None = None, interpolation: str = "bilinear") -> Path:
    """The ``.npy`` file holding ``samples`` decoded and cropped to ``image_size``; filled on first use."""
    samples = list(samples)
    payload = {"kind": "decoded images v2", "images": content_ids(samples), "image_size": image_size,
               "resize_size": resize_size, "interpolation": interpolation, "torchvision": torchvision.__version__,
               "pillow": PIL.__version__}

    def build(folder: Path) -> None:
        array = np.lib.format.open_memmap(folder / IMAGES_FILE, mode="w+", dtype=np.uint8,
                                          shape=(len(samples), image_size, image_size, 3))
        geometry = geometry_transforms(image_size, resize_size, interpolation)

        def decode(index: int, out: np.ndarray = array) -> None:
            out[index] = np.asarray(geometry(load_rgb(samples[index].path)))

        # Pillow releases the GIL, so threads decode in parallel.
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            list(progress(pool.map(decode, range(len(samples))), len(samples), "filling image cache"))
        array.flush()
        del array

    return cached_entry(cache_dir, "images", payload, build) / IMAGES_FILE


class DecodedImageDataset(Dataset):
    """Yields ``(transform(image), label)``: PIL images read from a decoded-image cache file."""

    def __init__(self, path: str | Path, labels: Sequence[int], transform: Callable | None = None) -> None:
        self.path = Path(path)
        self.labels = list(labels)
        self.transform = transform
        self._images: np.ndarray | None = None  # opened per process: a memmap must not be pickled to workers

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Image.Image, int]:
        if self._images is None:
            self._images = np.load(self.path, mmap_mode="r")
        image = Image.fromarray(np.array(self._images[index]))
        return (self.transform(image) if self.transform else image), self.labels[index]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}
