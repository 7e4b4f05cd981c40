"""Building blocks shared by several families."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1):
        pad = dilation * (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + BN + ReLU: the UNet level."""

    def __init__(self, cin: int, cout: int, mid: int | None = None):
        mid = cout if mid is None else mid
        super().__init__(ConvBNReLU(cin, mid), ConvBNReLU(mid, cout))


class Down(nn.Sequential):
    """2x2 max-pool then a double conv: one UNet encoder level below the first."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout))


class Up(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, double conv."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin // 2 + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class Head(nn.Conv2d):
    """1x1 conv to class logits."""

    def __init__(self, cin: int, num_classes: int):
        super().__init__(cin, num_classes, kernel_size=1)
