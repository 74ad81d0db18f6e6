"""The faster EfficientNet-Lite layers compute what the package's layers compute: "same" padding folded into the
convolutions (same parameters, names and results) and depthwise convolutions in float32 under CPU autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

from garbage_lit.models.layers import SamePadConv2d
from garbage_lit.models.zoos import EfficientNetLiteZoo


@pytest.fixture(scope="module")
def package_and_ours():
    torch.manual_seed(0)
    package = EfficientNet.from_name("efficientnet-lite0")
    ours = EfficientNetLiteZoo().build("efficientnet_lite0", pretrained_layout=True)
    ours.load_state_dict(package.state_dict())
    return package, ours


def test_the_padding_is_folded_with_the_same_parameters_and_names(package_and_ours):
    package, ours = package_and_ours
    assert not any(isinstance(m, Conv2dStaticSamePadding) for m in ours.modules())
    convs = [m for m in ours.modules() if isinstance(m, SamePadConv2d)]
    assert len(convs) == sum(isinstance(m, Conv2dStaticSamePadding) for m in package.modules()) == 49
    # Stride 2 on even sizes pads asymmetrically (0/1 for 3x3, 1/2 for 5x5): those keep an explicit pad.
    assert sorted({m.pad for m in convs if m.pad}) == [(0, 1, 0, 1), (1, 2, 1, 2)]
    assert all(m.stride == (2, 2) for m in convs if m.pad)
    assert ours.state_dict().keys() == package.state_dict().keys()


@pytest.mark.parametrize("size", [224, 260])
def test_folded_padding_gives_the_packages_outputs_and_gradients(package_and_ours, size):
    package, ours = package_and_ours
    images = torch.randn(2, 3, size, size)
    for model in (package, ours):
        model.train()
        model.zero_grad()
    torch.manual_seed(1)  # drop-connect draws
    expected = package(images)
    expected.square().mean().backward()
    torch.manual_seed(1)
    got = ours(images)
    got.square().mean().backward()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    for (name, theirs), mine in zip(package.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_depthwise_convolutions_stay_float32_under_cpu_autocast_and_pointwise_ones_do_not():
    torch.manual_seed(0)
    depthwise = SamePadConv2d(8, 8, 5, groups=8, padding=2)
    pointwise = SamePadConv2d(8, 4, 1)
    assert depthwise.float32_under_cpu_autocast and not pointwise.float32_under_cpu_autocast
    x = torch.randn(2, 8, 10, 10, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise(x)
        z = pointwise(y)
    assert y.dtype == z.dtype == torch.bfloat16  # the network goes on in the autocast dtype
    reference = F.conv2d(x.detach().float(), depthwise.weight, depthwise.bias, padding=2, groups=8)
    assert torch.equal(y, reference.to(torch.bfloat16))  # computed in float32, then rounded once
    z.float().sum().backward()
    assert depthwise.weight.grad.dtype == torch.float32
    # Outside autocast nothing changes: a plain convolution.
    plain = torch.randn(1, 8, 6, 6)
    assert torch.equal(depthwise(plain), F.conv2d(plain, depthwise.weight, depthwise.bias, padding=2, groups=8))
