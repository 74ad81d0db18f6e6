"""The paper's preprocessing: resize, center crop, random rotation (train only), to tensor, normalize."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from garbage_lit.data.transforms import build_transforms


def _image() -> Image.Image:
    gradient = torch.linspace(0, 255, 80).repeat(60, 1).to(torch.uint8)
    return Image.fromarray(torch.stack([gradient] * 3, dim=-1).numpy())


def _steps(compose: v2.Compose) -> list[v2.Transform]:
    """The transforms of a (possibly nested) Compose, in order."""
    return [s for t in compose.transforms for s in (_steps(t) if isinstance(t, v2.Compose) else [t])]


def test_train_rotates_test_does_not():
    train = build_transforms(True, image_size=32, resize_size=40, rotation_degrees=30)
    test = build_transforms(False, image_size=32, resize_size=40, rotation_degrees=30)
    assert [type(t) for t in _steps(train)] == [v2.Resize, v2.CenterCrop, v2.RandomRotation, v2.ToImage,
                                                 v2.ToDtype, v2.Normalize]
    assert not any(isinstance(t, v2.RandomRotation) for t in _steps(test))
    assert torch.equal(test(_image()), test(_image()))


def test_output_is_cropped_and_normalized():
    out = build_transforms(False, image_size=32, resize_size=40, mean=(0.5,) * 3, std=(0.5,) * 3)(_image())
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert -1.0 <= out.min() < -0.5 and 0.5 < out.max() <= 1.0


def test_interpolation_reaches_every_resize_and_unknown_names_the_key():
    for train, augment in ((False, "paper"), (True, "paper"), (True, "strong")):
        resize = next(t for t in _steps(build_transforms(train, 32, 40, augment=augment, interpolation="bicubic"))
                      if isinstance(t, (v2.Resize, v2.RandomResizedCrop)))
        assert resize.interpolation == InterpolationMode.BICUBIC
    with pytest.raises(ValueError, match="data.interpolation='lanczos' is not known; choose one of bilinear, bicubic"):
        build_transforms(False, 32, 40, interpolation="lanczos")


def test_a_batch_transform_mixes_training_batches_on_the_device_until_its_off_epoch(folder_dataset):
    from types import SimpleNamespace

    from torchvision.transforms import v2

    from garbage_lit.data.datamodule import GarbageDataModule

    data = GarbageDataModule(folder_dataset, batch_size=4, image_size=32, resize_size=36, scan_cache=False,
                             batch_transform=lambda num_classes: v2.MixUp(num_classes=num_classes, alpha=1.0),
                             batch_transform_off_epoch=2)
    data.setup("fit")
    images, labels = torch.rand(8, 3, 4, 4), torch.arange(8) % 3
    data.trainer = SimpleNamespace(training=True, current_epoch=1, global_step=0)
    torch.manual_seed(0)
    mixed, soft = data.on_after_batch_transfer((images, labels), 0)
    assert mixed.shape == images.shape and soft.shape == (8, 3) and not torch.equal(mixed, images)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(8))  # class probabilities, mixing two labels
    torch.manual_seed(1)  # the draws are the run's seed's, epoch's and batch's, not the process generator's
    assert torch.equal(data.on_after_batch_transfer((images, labels), 0)[0], mixed)
    data.trainer.global_step = 1
    assert not torch.equal(data.on_after_batch_transfer((images, labels), 0)[0], mixed)
    data.trainer = SimpleNamespace(training=True, current_epoch=2)  # the off epoch: clean batches from here on
    assert data.on_after_batch_transfer((images, labels), 0)[1] is labels
    data.trainer = SimpleNamespace(training=False, current_epoch=1)  # validation and test batches: never mixed
    assert data.on_after_batch_transfer((images, labels), 0)[1] is labels
