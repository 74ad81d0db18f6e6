"""Decoded-image cache: the same pixels as decoding each time, random transforms still per epoch."""

from __future__ import annotations

import numpy as np
import torch

from garbage_lit.data.datasets import ImageDataset
from garbage_lit.data.image_cache import DecodedImageDataset, decoded_images
from garbage_lit.data.images import load_rgb
from garbage_lit.data.scan import scan_dataset
from garbage_lit.data.transforms import build_transforms, epoch_transforms, geometry_transforms
from garbage_lit.run.components import data_module


def test_decoded_cache_equals_direct_decoding(folder_dataset, tmp_path):
    samples = scan_dataset(folder_dataset, "folder").samples
    path = decoded_images(samples, image_size=32, resize_size=36, cache_dir=tmp_path / "cache", workers=2)
    array = np.load(path)
    assert array.shape == (30, 32, 32, 3) and array.dtype == np.uint8
    geometry = geometry_transforms(32, 36)
    for index in (0, 13, 29):
        assert np.array_equal(array[index], np.asarray(geometry(load_rgb(samples[index].path))))

    labels = [s.label for s in samples]
    for train in (False, True):
        direct = ImageDataset(samples, build_transforms(train, 32, 36, 20, (0.5,) * 3, (0.25,) * 3))
        cached = DecodedImageDataset(path, labels, epoch_transforms(train, 20, (0.5,) * 3, (0.25,) * 3))
        torch.manual_seed(3)
        direct_items = [direct[i] for i in range(4)]
        torch.manual_seed(3)
        cached_items = [cached[i] for i in range(4)]
        for (x_direct, y_direct), (x_cached, y_cached) in zip(direct_items, cached_items):
            assert y_direct == y_cached
            torch.testing.assert_close(x_cached, x_direct, atol=0, rtol=0)
    # Random rotation still runs on every read: the same cached image comes out differently.
    assert not torch.equal(cached[0][0], cached[0][0])


def test_decoded_cache_key_follows_contents_and_sizes(folder_dataset, tmp_path):
    samples = scan_dataset(folder_dataset, "folder").samples
    cache = tmp_path / "cache"
    base = decoded_images(samples[:6], 32, 36, cache)
    assert decoded_images(samples[:6], 32, 36, cache) == base
    others = {decoded_images(samples[:6], 24, 36, cache), decoded_images(samples[:6], 32, 40, cache),
              decoded_images(samples[1:7], 32, 36, cache), decoded_images(samples[:6][::-1], 32, 36, cache)}
    assert len(others | {base}) == 5


def test_datamodule_with_image_cache_serves_the_same_batches(make_cfg, folder_dataset, tmp_path):
    batches = []
    for image_cache in ("false", "true"):
        cfg = make_cfg("data=folder", f"data.root={folder_dataset}", f"cache.images={image_cache}",
                       output_dir=tmp_path / image_cache)
        datamodule = data_module(cfg)
        datamodule.setup("fit")
        torch.manual_seed(0)
        batches.append([next(iter(datamodule.test_dataloader())), next(iter(datamodule.train_dataloader()))])
    (test_plain, train_plain), (test_cached, train_cached) = batches
    assert isinstance(datamodule.test_dataloader().dataset, DecodedImageDataset)
    for plain, cached in ((test_plain, test_cached), (train_plain, train_cached)):
        torch.testing.assert_close(cached[0], plain[0], atol=0, rtol=0)
        assert torch.equal(cached[1], plain[1])
