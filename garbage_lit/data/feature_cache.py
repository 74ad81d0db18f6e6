"""Feature cache for frozen-backbone training: pooled backbone features computed once, shared by a sweep.

With a frozen backbone every epoch of every job pushes the same images through the same network;
only the head learns. The cache runs that forward pass once per (backbone, its weights, image
contents, preprocessing, number of views) and stores ``features.npy`` of shape ``(K, N, D)`` under
``<cache_dir>/features/<key>/`` (crash-safe and shared, see :mod:`garbage_lit.data.cache_store`).

Augmentation semantics: with random rotation on, a training image gets ``K`` independently
augmented views, drawn once from a seed that is part of the key; each epoch
:class:`ViewSampler` shuffles the images as ``DataLoader(shuffle=True)`` would and picks one of the
``K`` views per image, seeded through the run's ``seed``. Without rotation (and for the evaluation
splits) there is exactly one, deterministic, view. So ``K`` bounds how many distinct rotations of
an image the head sees; ``K >= epochs`` comes closest to uncached training.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from garbage_lit.data.cache_store import cached_entry
from garbage_lit.data.progress import progress

log = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
VIEW_SEED = 0  # augmented views are a property of the cache entry, not of a job's seed


def feature_cache_decision(mode: bool | str, backbone: nn.Module, callbacks: Sequence[object] = (),
                           world_size: int = 1) -> tuple[bool, str]:
    """Whether training may use cached features (``data.feature_cache``: true, false or auto), and why.

    Exact only when no backbone parameter is trainable now and no fine-tuning callback will make one
    trainable later. ``true`` with a backbone that trains is an error rather than a silently frozen backbone.
    Cached features are served by one process (``world_size`` 1): under DDP ``auto`` falls back to images.
    """
    setting = f"data.feature_cache={str(mode).lower()}"
    if mode is False:
        return False, setting
    finetuning = next((type(c).__name__ for c in callbacks if isinstance(c, BaseFinetuning)), None)
    if any(p.requires_grad for p in backbone.parameters()):
        reason = "model.freeze_backbone=false trains the backbone, so its features change every step"
    elif finetuning is not None:
        reason = (f"the {finetuning} callback (callbacks.backbone_finetuning, e.g. experiment=finetune) unfreezes "
                  f"the backbone during training")
    elif world_size > 1:
        if mode == "auto":
            return False, f"{setting} is off: cached features are served to one process, this run has {world_size}"
        raise ValueError(f"{setting} cannot be used with {world_size} processes (DDP): cached features are served "
                         f"to one process. Set data.feature_cache=auto (images under DDP) or run on one device")
    else:
        return True, f"{setting}: the backbone stays frozen for the whole run"
    if mode == "auto":
        return False, f"{setting} is off: {reason}"
    raise ValueError(f"{setting} cannot be used here: {reason}, and cached features would keep "
                     f"it frozen without saying so. Set data.feature_cache=false (or auto), or keep the backbone "
                     f"frozen (model.freeze_backbone=true, no callbacks.backbone_finetuning)")


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
    payload = {"kind": "backbone features v1", "backbone": backbone_name,
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
                    out = backbone(batch.to(device)).float().cpu().numpy()
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


class FeatureDataset(Dataset):
    """Cached features of ``K`` views per image held in memory as one tensor; a batch is one gather.

    ``features`` is ``(K, N, D)`` on ``device``. Indexed with a list of flat indices ``view * N + image``
    (what ``DataLoader(batch_size=None, sampler=BatchSampler(...))`` passes, see :meth:`loader`) it
    returns the whole batch ``({"features": (B, D)}, labels)``, so the model skips its backbone: no
    per-sample items, no collate.
    """

    def __init__(self, path: str | Path, labels: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        self.features = torch.from_numpy(np.load(self.path)).to(device)
        self.views, self.num_images, dim = self.features.shape
        self._flat = self.features.view(self.views * self.num_images, dim)
        self.labels = torch.as_tensor(list(labels), device=device)
        if self.num_images != len(self.labels):
            raise ValueError(f"{self.path} holds {self.num_images} images but {len(self.labels)} labels were given")

    def __len__(self) -> int:
        return self.views * self.num_images

    def __getitem__(self, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        index = torch.as_tensor(indices, device=self._flat.device)
        return {"features": self._flat[index]}, self.labels[index % self.num_images]

    def loader(self, batch_size: int, shuffle: bool) -> DataLoader:
        """Batches of ``batch_size`` in :class:`ViewSampler` order (``shuffle``) or in image order, one view."""
        order = ViewSampler(self) if shuffle else SequentialSampler(range(self.num_images))
        return DataLoader(self, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False))


class ViewSampler(Sampler[int]):
    """Each epoch: every image once, shuffled exactly as ``DataLoader(shuffle=True)`` would, in one random view.

    The shuffle is a :class:`RandomSampler` over the images, so with one view the order (and the
    global random state consumed) is identical to training on images; the view choice draws its own
    seed from the global generator, which ``seed_everything`` seeds.
    """

    def __init__(self, dataset: FeatureDataset) -> None:
        self.num_images, self.views = dataset.num_images, dataset.views
        self.order = RandomSampler(range(self.num_images))

    def __len__(self) -> int:
        return self.num_images

    def __iter__(self) -> Iterator[int]:
        order = list(self.order)
        if self.views == 1:
            yield from order
            return
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        chosen = torch.randint(self.views, (self.num_images,), generator=torch.Generator().manual_seed(seed))
        yield from (view * self.num_images + image for image, view in zip(order, chosen.tolist()))
