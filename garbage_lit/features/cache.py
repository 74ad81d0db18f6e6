"""Pooled features of a frozen backbone, computed once per image set and shared by every job of a sweep.

With a frozen backbone every epoch of every job pushes the same images through the same network;
only the head learns. The cache runs that forward pass once per (backbone, its weights, image
contents, preprocessing, number of views) and stores ``features.npy`` of shape ``(K, N, D)`` under
``<cache_dir>/features/<key>/`` (crash-safe and shared, see :mod:`garbage_lit.data.cache_store`).

With random augmentation on, a training image gets ``K`` independently augmented views, drawn once
from a seed that is part of the key (:class:`~garbage_lit.features.dataset.ViewSampler` picks one per
epoch). Without it (and for the evaluation splits) there is exactly one, deterministic, view.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from garbage_lit.data.cache_store import cached_entry, progress

log = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
VIEW_SEED = 0  # augmented views are a property of the cache entry, not of a job's seed


def module_fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes and values): the identity of its weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def cached_features(backbone: nn.Module, backbone_name: str, images: Dataset, image_ids: Sequence[str],
                    preprocessing: dict, views: int, cache_dir: str | Path, batch_size: int = 64,
                    num_workers: int = 0, fingerprint: str | None = None) -> Path:
    """The ``features.npy`` for ``images`` (an image dataset with its transform) under ``backbone``.

    ``image_ids`` (content hashes) and ``preprocessing`` (every transform setting) identify what
    ``images`` yields; together with the backbone's fingerprint (``fingerprint``, computed when not
    given) and ``views`` they form the key.
    """
    payload = {"kind": "backbone features v2", "backbone": backbone_name,  # v2: computed channels-last
               "weights": fingerprint or module_fingerprint(backbone),
               "images": list(image_ids), "preprocessing": preprocessing, "views": views, "view_seed": VIEW_SEED,
               "torch": torch.__version__, "torchvision": torchvision.__version__}

    def build(folder: Path) -> None:
        extract_features(backbone, images, views, folder / FEATURES_FILE, batch_size, num_workers)

    return cached_entry(cache_dir, "features", payload, build) / FEATURES_FILE


def extract_features(backbone: nn.Module, images: Dataset, views: int, path: Path, batch_size: int = 64,
                     num_workers: int = 0) -> None:
    """Write ``views`` passes of ``images`` through ``backbone`` (eval mode, no autograd) to ``path``.

    The random transforms draw from their own seed inside a forked RNG, so the run's random state
    (and with it shuffling and initialisation) is the same with and without the cache.
    """
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    features: np.ndarray | None = None
    try:
        with (torch.random.fork_rng(devices=[]), torch.inference_mode(),
              progress(None, views * len(images), "filling feature cache") as bar):
            torch.manual_seed(VIEW_SEED)
            for view in range(views):
                loader = DataLoader(images, batch_size=batch_size, num_workers=num_workers,
                                    generator=torch.Generator().manual_seed(VIEW_SEED + view))
                start = 0
                for batch, _ in loader:
                    # channels-last input, the format training runs its convolutions in
                    out = backbone(batch.to(device, memory_format=torch.channels_last)).float().cpu().numpy()
                    if features is None:
                        features = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                                             shape=(views, len(images), out.shape[1]))
                    features[view, start:start + len(out)] = out
                    start += len(out)
                    bar.update(len(out))
    finally:
        backbone.train(was_training)
    if features is None:
        raise ValueError("the feature cache was asked for the features of an empty image set")
    features.flush()
