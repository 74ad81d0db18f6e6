"""Layers that compute what a backbone's own layers compute, faster on a CPU.

EfficientNet-Lite's convolutions pad like TensorFlow's "same" with a padding module computed for the input size
(``Conv2dStaticSamePadding``): a separate copy of every block's input before its convolution. :class:`SamePadConv2d`
folds a symmetric padding (every stride-1 layer) into the convolution itself and keeps an explicit pad only where
"same" is asymmetric (stride 2 on even sizes); same parameters, same names, same results.

Its depthwise convolutions also stay float32 under CPU autocast: oneDNN computes a bf16 depthwise convolution's weight
gradient with its generic grouped kernel, several times slower than the float32 depthwise one (``jit_dw``), while the
pointwise convolutions around it gain most from bf16 (AMX, avx512_bf16). The output goes back to the autocast dtype.
benchmarks/README.md (benchmark 11, one step by layer kind) has the measurements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SamePadConv2d(nn.Conv2d):
    """A ``Conv2d`` with TensorFlow's static "same" padding: ``padding`` where it is symmetric, else ``pad`` (left,
    right, top, bottom) applied first. A depthwise one runs in float32 under CPU autocast (see the module docstring)."""

    def __init__(self, *args: object, pad: tuple[int, int, int, int] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad
        self.float32_under_cpu_autocast = self.groups > 1 and self.groups == self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.float32_under_cpu_autocast and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self._padded_conv(x.float()).to(torch.get_autocast_dtype("cpu"))
        return self._padded_conv(x)

    def _padded_conv(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(F.pad(x, self.pad) if self.pad else x, self.weight, self.bias)


def fold_static_padding(model: nn.Module) -> nn.Module:
    """Replace every EfficientNet-Lite ``Conv2dStaticSamePadding`` in ``model`` by a :class:`SamePadConv2d` holding the
    same parameters (so the state dict keeps its keys and values); returns ``model``."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    for parent in list(model.modules()):
        for name, conv in list(parent.named_children()):
            if isinstance(conv, Conv2dStaticSamePadding):
                setattr(parent, name, _same_pad_conv(conv))
    return model


def _same_pad_conv(conv: nn.Conv2d) -> SamePadConv2d:
    pad = tuple(conv.static_padding.padding) if isinstance(conv.static_padding, nn.ZeroPad2d) else (0, 0, 0, 0)
    left, right, top, bottom = pad
    symmetric = left == right and top == bottom
    folded = SamePadConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                           padding=(top, left) if symmetric else 0, dilation=conv.dilation, groups=conv.groups,
                           bias=conv.bias is not None, pad=None if symmetric else pad,
                           device=conv.weight.device, dtype=conv.weight.dtype)
    folded.weight = conv.weight
    if conv.bias is not None:
        folded.bias = conv.bias
    return folded
