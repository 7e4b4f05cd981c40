"""DUCK-Net (Dumitru, Peteleaza and Craciun, Scientific Reports 13:9803, 2023,
doi:10.1038/s41598-023-36940-5, arXiv:2311.02239).

A UNet-shaped network with five down-sampling levels whose unit is the *DUCK block*
(deep understanding convolutional kernel). A DUCK block normalises its input and sums
six parallel branches, then normalises again:

* **wide-scope**: three 3x3 convs with dilation 1, 2, 3;
* **mid-scope**: two 3x3 convs with dilation 1, 2;
* **residual** branches: one, two and three residual blocks (1x1 shortcut plus two 3x3
  convs, each followed by BN);
* **separated**: a 1x6 then a 6x1 conv.

Every conv is followed by ReLU then BatchNorm, as in the authors' code. The encoder
down-samples with 2x2 stride-2 convs and *adds an image copy at every level* (residual
image injection); the bottleneck is two residual blocks at 32 F and two at 16 F; the
decoder upsamples (nearest) and *adds* the skip (no concatenation) before a DUCK block.
A 1x1 conv gives the logits. ``width`` is the paper's ``starting_filters`` F (17; the
paper also trains 34). DUCK-Net is the costliest of the ten per pixel of width: at the
teaching width (F = 2) a CPU training step still costs about 4x the teaching UNet's,
because its 273 small convolutions per pass cost time whatever their width.

**Image injection and the cut.** The paper derives each level's image copy with a chain
of learned 2x2 stride-2 convs applied to the image. The kit instead average-pools the
image to 1/2 ... 1/32 in one parameter-free stage (``pool``) and projects each copy with
a learned 1x1 conv inside the encoder level. This keeps the copies visible to the split
as *raw image data*: any cut whose server part starts before the bottleneck receives
one of them, and :class:`~medseg_kit.split.Split` refuses it unless ``allow_raw``. (The
five copies share one stage, which keeps the table at 13 stages.) The
whole encoder therefore stays on the site in the default cut — DUCK-Net's image
injection and "the server only sees features" pull in opposite directions. The
separated branch's even 6-tap kernels are padded like Keras' ``"same"`` (one more zero
after than before).

The registered count, 38.9 M, is the number of trainable parameters of the authors'
released Keras model at F = 17, counted from their code (github.com/RazvanDu/DUCK-Net);
the kit's version at ``width=17`` has 38.1 M, the difference being the image injection
(five 1x1 projections here, a chain of 2x2 convs there).

Stage table::

    pool(x)->(p1..p5)  enc0(x)  enc1(enc0,p1) enc2(enc1,p2) enc3(enc2,p3) enc4(enc3,p4)
    bottleneck(enc4,p5)  dec4(bottleneck,enc4) dec3(dec4,enc3) dec2(dec3,enc2)
    dec1(dec2,enc1) dec0(dec1,enc0)  head(dec0)->logits

Default cut ``(7, 11)``: the encoder (and every image copy) on the site, the decoder
on the server, the last (full-resolution) decoder level, the head and the loss back on
the site, so the full-resolution skip ``enc0`` never leaves it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .staged import OUTPUT, Lambda, Stage, StagedNet


class ConvReLUBN(nn.Conv2d):
    """Conv (biased, "same" padding) -> ReLU -> BatchNorm: DUCK-Net's ordering.

    A convolution module that owns its BatchNorm (fewer module objects than a
    ``Sequential``: DUCK-Net has 273 of these). Even kernels are padded like Keras'
    ``"same"``: one zero more after than before.
    """

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int] = 3,
                 dilation: int = 1):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        th, tw = dilation * (kh - 1), dilation * (kw - 1)  # total padding per axis
        symmetric = th % 2 == 0 and tw % 2 == 0
        super().__init__(cin, cout, (kh, kw), dilation=dilation,
                         padding=(th // 2, tw // 2) if symmetric else 0)
        self.pad = None if symmetric else (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return self.bn(F.relu(super().forward(x)))


class ResidualBlock(nn.Module):
    """``BN(relu(conv1x1(x)) + BN-ed double 3x3 conv(x))``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1)
        self.conv1 = ConvReLUBN(cin, cout)
        self.conv2 = ConvReLUBN(cout, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv2(self.conv1(x)) + F.relu(self.shortcut(x)))


def _residual_chain(cin: int, cout: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(cin if i == 0 else cout, cout) for i in range(n)])


class DUCKBlock(nn.Module):
    """Six parallel branches summed between two BatchNorms (Fig. 2 of the paper)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(cin)
        self.branches = nn.ModuleList([
            nn.Sequential(*[ConvReLUBN(cin if d == 1 else cout, cout, 3, d)
                            for d in (1, 2, 3)]),  # wide-scope
            nn.Sequential(ConvReLUBN(cin, cout, 3, 1), ConvReLUBN(cout, cout, 3, 2)),  # mid
            _residual_chain(cin, cout, 1),
            _residual_chain(cin, cout, 2),
            _residual_chain(cin, cout, 3),
            nn.Sequential(ConvReLUBN(cin, cout, (1, 6)), ConvReLUBN(cout, cout, (6, 1))),
        ])
        self.bn_out = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_in(x)
        y = self.branches[0](x)
        for b in self.branches[1:]:
            y = y + b(x)
        return self.bn_out(y)


class EncoderLevel(nn.Module):
    """2x2 stride-2 conv of the previous level + projected image copy, then a DUCK block."""

    def __init__(self, cin: int, cout: int, img_channels: int):
        super().__init__()
        self.down = nn.Conv2d(cin, cout, 2, stride=2)
        self.inject = nn.Conv2d(img_channels, cout, 1)
        self.duck = DUCKBlock(cout, cout)

    def forward(self, x: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        return self.duck(self.down(x) + self.inject(img))


class Bottleneck(EncoderLevel):
    """The last level: two residual blocks at 32 F, two at 16 F (instead of a DUCK block)."""

    def __init__(self, cin: int, cout: int, img_channels: int):
        super().__init__(cin, cout, img_channels)
        self.duck = nn.Sequential(_residual_chain(cout, cout, 2),
                                  _residual_chain(cout, cout // 2, 2))


class DecoderLevel(nn.Module):
    """Nearest upsampling x2, add the skip, DUCK block."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.duck = DUCKBlock(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.duck(F.interpolate(x, scale_factor=2, mode="nearest") + skip)


def image_pyramid(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The image average-pooled to 1/2, 1/4, 1/8, 1/16 and 1/32 (raw image data)."""
    out = []
    for _ in range(5):
        x = F.avg_pool2d(x, 2)
        out.append(x)
    return tuple(out)


def _create_ducknet(in_channels: int, num_classes: int, width: int) -> StagedNet:
    f = width
    c = [f * 2 ** i for i in range(6)]  # F, 2F, 4F, 8F, 16F, 32F
    stages = [
        Stage("pool", Lambda(image_pyramid, "avg_pool 2x2, five times"), "x",
              ("p1", "p2", "p3", "p4", "p5")),
        Stage("enc0", DUCKBlock(in_channels, c[0]), "x"),
    ]
    for i in range(1, 5):
        stages.append(Stage(f"enc{i}", EncoderLevel(c[i - 1], c[i], in_channels),
                            (f"enc{i - 1}", f"p{i}")))
    stages.append(Stage("bottleneck", Bottleneck(c[4], c[5], in_channels), ("enc4", "p5")))
    prev = "bottleneck"
    for i in reversed(range(5)):  # dec4 (16F -> 8F) ... dec1 (2F -> F), dec0 (F -> F)
        stages.append(Stage(f"dec{i}", DecoderLevel(c[i], c[max(i - 1, 0)]),
                            (prev, f"enc{i}")))
        prev = f"dec{i}"
    stages.append(Stage("head", nn.Conv2d(c[0], num_classes, 1), "dec0", OUTPUT))
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=32, min_size=32, default_cut=(7, 11))


@register_model("ducknet", teaching_width=2, paper_width=17,
                reference="Dumitru et al., Sci. Rep. 2023, doi:10.1038/s41598-023-36940-5",
                published_params="38.9M",
                published_source="not printed in the paper: the trainable parameters of the "
                                  "authors' released Keras model at F = 17, counted from "
                                  "their code")
def ducknet(in_channels: int = 3, num_classes: int = 1, width: int = 2) -> StagedNet:
    """DUCK-Net (``width`` = starting filters F; 17 in the paper)."""
    return _create_ducknet(in_channels, num_classes, width)
