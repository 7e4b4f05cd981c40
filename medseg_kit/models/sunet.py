"""SUNet — Stacked U-Nets (Shah, Ghosh, Davis and Goldstein, 2018, arXiv:1804.10343).

**Naming.** The MedSegNet10 paper lists this network as "SUNet: Strong UNet" with a
citation that could not be resolved to a published architecture of that name. The kit
therefore implements the segmentation network published under the name SUNet: the
Stacked U-Nets of Shah et al., "Stacked U-Nets: A No-Frills Approach to Natural Image
Segmentation".

Architecture (SUNet-64 of the paper, dilated for segmentation at output stride 16, as
in the authors' code): a stem (7x7 stride-2 conv, then a pre-activation residual block
with stride 2) to 1/4; then four groups of small residual U-Net modules — 2, 4, 4 and 1
modules — separated by 2x2 average pooling (the last pooling is dropped and the last
group dilated instead, keeping 1/16). Each module is a pre-activation (BN-ReLU-conv)
U-Net of its own: a 1x1 conv to 64 channels (at paper width), two stride-2 levels of
two 3x3 convs, two 3x3 transposed-conv up levels with concatenated skips, and a 1x1
conv to the group's width (256, 512, 768, 1024), added to the module's input (projected
by a 1x1 conv when the widths differ). In the dilated last group the strides become
dilations (2 and 4). The head is BN-ReLU, a 1x1 classifier and bilinear upsampling x16.
The authors' code shares weights between repeated levels of deeper modules; with two
levels per module (SUNet-64) nothing is shared, as here. Dropout (probability 1e-7 in
the authors' code) is omitted.

``width`` is the module width (64 in SUNet-64; the stem has ``width`` channels and the
groups ``4, 8, 12, 16 x width``). The registered published count, 6.9 M, is the paper's
figure for SUNet-64 as an ImageNet classifier; its 1000-way linear layer (1.0 M) is
replaced here by the 1x1 segmentation head, so the kit's paper-width count is 5.9 M.

Stage table::

    stem(x) unet1(stem) unet2a(unet1) unet2b(unet2a) unet3a(unet2b) unet3b(unet3a)
    unet4(unet3b) head(unet4)->logits

Default cut ``(1, 7)``: the stem on the site, the stacked U-Nets on the server, the
classifier and upsampling back on the site.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .staged import OUTPUT, Stage, StagedNet


class BNReLUConv(nn.Sequential):
    """Pre-activation conv: BatchNorm, ReLU, then a (biased) convolution."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1, pre: bool = True):
        layers = [nn.BatchNorm2d(cin), nn.ReLU()] if pre else []
        layers.append(nn.Conv2d(cin, cout, kernel, stride, dilation * (kernel // 2),
                                dilation=dilation))
        super().__init__(*layers)


class BNReLUDeconv(nn.Module):
    """BN, ReLU and a 3x3 transposed conv (stride 2, or stride 1 dilated), to a given size."""

    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
        stride = 1 if dilation > 1 else 2
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=dilation,
                                         dilation=dilation)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.deconv(self.pre(x), output_size=size)


class ResidualBlock(nn.Module):
    """The stem's pre-activation residual block (stride 2, projected shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1),
                                  BNReLUConv(cout, cout))
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.body(x) + self.shortcut(x)


class UNetModule(nn.Module):
    """One residual U-Net module of the stack.

    Args:
        cin: input channels; cout: output channels (the group width).
        filters: channels inside the module (``width``).
        levels: down/up levels (2, or 1 in the last group).
        dilation: 0 for strided levels; ``d > 1`` replaces stride by dilations d, 2d.
    """

    def __init__(self, cin: int, cout: int, filters: int, levels: int = 2, dilation: int = 0):
        super().__init__()
        self.project = None
        if cin != cout:  # normalise the input once; project it for the residual sum
            self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
            self.project = nn.Conv2d(cin, cout, 1)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(levels):
            d = (2 ** i) * dilation
            layers = []
            if i == 0:
                layers.append(BNReLUConv(cin, filters, 1, pre=cin == cout))
            stride, d1, d2 = (1, d, 2 * d) if d > 1 else (2, 1, 1)
            layers += [BNReLUConv(filters, filters, 3, stride, d1),
                       BNReLUConv(filters, filters, 3, 1, d2)]
            self.down.append(nn.Sequential(*layers))
            up_in = filters if i == levels - 1 else 2 * filters
            self.up.append(nn.ModuleList([
                BNReLUDeconv(up_in, filters, 2 * d if d > 1 else 1),
                nn.Sequential(BNReLUConv(filters, filters, 3, 1, d if d > 1 else 1),
                              *([BNReLUConv(filters, cout, 1)] if i == 0 else [])),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.project is not None:
            x = self.pre(x)
        xs = [x]
        for down in self.down:
            xs.append(down(xs[-1]))
        out = xs[-1]
        for i in reversed(range(len(self.down))):
            deconv, conv = self.up[i]
            out = conv(deconv(out, xs[i].shape[-2:]))
            if i:
                out = torch.cat([out, xs[i]], dim=1)
        skip = x if self.project is None else self.project(x)
        return out + skip


class SUNetHead(nn.Module):
    """BN-ReLU, 1x1 classifier, bilinear upsampling by ``scale``."""

    def __init__(self, cin: int, num_classes: int, scale: int):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
        self.classifier = nn.Conv2d(cin, num_classes, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.classifier(self.pre(x)), scale_factor=self.scale,
                             mode="bilinear", align_corners=False)


def _group(cin: int, cout: int, filters: int, n: int, pool: bool, levels: int = 2,
           dilation: int = 0) -> nn.Sequential:
    mods = [nn.AvgPool2d(2)] if pool else []
    for i in range(n):
        mods.append(UNetModule(cin if i == 0 else cout, cout, filters, levels, dilation))
    return nn.Sequential(*mods)


def _create_sunet(in_channels: int, num_classes: int, width: int) -> StagedNet:
    w = width
    g = [4 * w, 8 * w, 12 * w, 16 * w]  # 256, 512, 768, 1024 at width 64
    stem = nn.Sequential(nn.Conv2d(in_channels, w, 7, stride=2, padding=3),
                         ResidualBlock(w, 2 * w, stride=2))
    stages = [
        Stage("stem", stem, "x"),
        Stage("unet1", _group(2 * w, g[0], w, 2, pool=False), "stem"),
        Stage("unet2a", _group(g[0], g[1], w, 2, pool=True), "unet1"),
        Stage("unet2b", _group(g[1], g[1], w, 2, pool=False), "unet2a"),
        Stage("unet3a", _group(g[1], g[2], w, 2, pool=True), "unet2b"),
        Stage("unet3b", _group(g[2], g[2], w, 2, pool=False), "unet3a"),
        Stage("unet4", _group(g[2], g[3], w, 1, pool=False, levels=1, dilation=2), "unet3b"),
        Stage("head", SUNetHead(g[3], num_classes, 16), "unet4", OUTPUT),
    ]
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=16, min_size=16, default_cut=(1, 7))


@register_model("sunet", teaching_width=16, paper_width=64,
                reference="Shah et al., 2018, Stacked U-Nets, arXiv:1804.10343 "
                          "(MedSegNet10: 'Strong UNet')",
                published_params="6.9M", published_comparable=False,
                published_source="the paper's SUNet-64 as an ImageNet classifier, with a "
                                  "1000-way fully connected layer (1.0 M) where the kit has "
                                  "a 1x1 segmentation head")
def sunet(in_channels: int = 3, num_classes: int = 1, width: int = 16) -> StagedNet:
    """Stacked U-Nets (SUNet-64 layout, dilated to output stride 16)."""
    return _create_sunet(in_channels, num_classes, width)
