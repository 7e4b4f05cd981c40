"""The ResNet backbone shared by DeepLabV3, DeepLabV3+ and RefineNet (trained from scratch).

He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385): a 7x7 stride-2 stem with 3x3 max-pooling, then four layers of
bottleneck blocks (1x1 reduce, 3x3, 1x1 expand x4, identity or projection shortcut).
ResNet-50 has (3, 4, 6, 3) blocks per layer, ResNet-101 (3, 4, 23, 3). The stride sits
on the 3x3 convolution of a layer's first block (the common "v1.5" placement).

For DeepLab the last layers trade stride for dilation (atrous convolution, Chen et al.
2017): ``output_stride=16`` keeps ``layer4`` at 1/16 with dilation 2, ``output_stride=8``
keeps ``layer3`` at 1/8 (dilation 2) and ``layer4`` at 1/8 (dilation 4). ``multi_grid``
multiplies the dilation of the three blocks of ``layer4`` (DeepLabV3's "Multi-grid").

``width`` is the stem's channel count (64 in the paper); the bottleneck widths are
``width * (1, 2, 4, 8)`` and the layer outputs four times that (256 ... 2048 at 64).

Example:
    >>> stages, ch = resnet_stages(3, width=8, depth=50)
    >>> [name for name, _ in stages]
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    >>> ch["layer1"], ch["layer4"]
    (32, 256)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNReLU

LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(
            ConvBNReLU(cin, planes, 1),
            ConvBNReLU(planes, planes, 3, stride=stride, dilation=dilation),
            nn.Conv2d(planes, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.body(x) + identity)


def make_layer(cin: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1,
               multi_grid: Sequence[int] = (1,)) -> nn.Sequential:
    """One ResNet layer; the first block strides (when not dilated) and projects."""
    layers = []
    for i in range(blocks):
        rate = dilation * multi_grid[i % len(multi_grid)]
        layers.append(Bottleneck(cin, planes, stride if i == 0 else 1, rate))
        cin = planes * Bottleneck.expansion
    return nn.Sequential(*layers)


def resnet_stages(in_channels: int, width: int = 64, depth: int = 101,
                  output_stride: int = 32, multi_grid: Sequence[int] = (1, 1, 1)
                  ) -> tuple[list[tuple[str, nn.Module]], dict[str, int]]:
    """The five backbone stages ``stem, layer1 … layer4`` and their output channels.

    Args:
        in_channels: image channels.
        width: stem channels (64 in the paper).
        depth: 50 or 101.
        output_stride: 32 (plain ResNet), 16 or 8 (atrous, for DeepLab).
        multi_grid: dilation multipliers of ``layer4``'s blocks (DeepLabV3 uses (1, 2, 4)).

    Returns:
        ``([(name, module), ...], {name: out_channels})``; ``stem`` ends at 1/4 of the
        input (stride-2 conv and stride-2 max-pooling), ``layer1`` at 1/4, ``layer2`` at
        1/8, ``layer3`` and ``layer4`` at 1/16 and 1/32 (or dilated, see above).

    Raises:
        ValueError: for an unknown depth or output stride.
    """
    if depth not in LAYERS:
        raise ValueError(f"ResNet depth must be one of {sorted(LAYERS)}; got {depth}")
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32; got {output_stride}")
    blocks = LAYERS[depth]
    # (stride, dilation) of layer3 and layer4 for each output stride
    s3, d3, s4, d4 = {32: (2, 1, 2, 1), 16: (2, 1, 1, 2), 8: (1, 2, 1, 4)}[output_stride]
    planes = [width * m for m in (1, 2, 4, 8)]
    exp = Bottleneck.expansion
    stem = nn.Sequential(ConvBNReLU(in_channels, width, 7, stride=2),
                         nn.MaxPool2d(3, stride=2, padding=1))
    stages = [
        ("stem", stem),
        ("layer1", make_layer(width, planes[0], blocks[0])),
        ("layer2", make_layer(planes[0] * exp, planes[1], blocks[1], stride=2)),
        ("layer3", make_layer(planes[1] * exp, planes[2], blocks[2], s3, d3)),
        ("layer4", make_layer(planes[2] * exp, planes[3], blocks[3], s4, d4,
                              multi_grid if output_stride < 32 else (1,))),
    ]
    channels = {"stem": width, **{f"layer{i + 1}": p * exp for i, p in enumerate(planes)}}
    return stages, channels
